"""`mcp-sidecar tools lock|diff` and `mcp-sidecar scan`: the upstream reached exactly as `serve` reaches it (the
same config file, environment and flags; auth settings are not used), listed through proxy/upstream/listing.py.

Exit status: 0 done (diff: equal), 1 diff found differences or a scan --fail-* condition held, 2 could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from proxy.config import ChannelSettings, Config, ConfigError, SseUpstreamConfig, StdioUpstreamConfig, load_config
from proxy.errors import ProxyError
from proxy.runtime.logs import configure_logging
from proxy.tools.drift import compare, render
from proxy.tools.pinning import LockFileError, Snapshot, read_lock, write_lock
from proxy.upstream.listing import Listing, ListingError, list_everything

EXIT_OK, EXIT_DIFFERS, EXIT_ERROR = 0, 1, 2
DEFAULT_LOCK = "tools.lock"


class CommandError(Exception):
    """Why a command could not run; printed after `mcp-sidecar: `, exit status 2."""


def add_upstream_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="the sidecar's YAML or JSON config file")
    parser.add_argument("--upstream", help="Streamable HTTP URL of the MCP server")
    parser.add_argument("--upstream-command", help='stdio MCP server to spawn, e.g. "npx -y some-mcp-server"')
    parser.add_argument("--upstream-sse", help="legacy HTTP+SSE (2024-11-05) URL of the MCP server")


def add_tools_commands(commands: Any) -> None:
    tools = commands.add_parser("tools", help="pin the upstream's tool definitions and compare them with the lock")
    actions = tools.add_subparsers(title="tools commands", required=True)
    lock = actions.add_parser("lock", help="write the lock file from the live upstream")
    add_upstream_options(lock)
    lock.add_argument("--out", help=f"lock file (default: tools.lock_file, else {DEFAULT_LOCK}; .json for JSON)")
    lock.add_argument("--update", action="store_true", help="rewrite an existing lock (after reviewing the diff)")
    lock.set_defaults(run=lambda args: run_command(lock_command, args))
    diff = actions.add_parser("diff", help="show what differs between the lock and the live upstream")
    add_upstream_options(diff)
    diff.add_argument("--lock", help=f"lock file (default: tools.lock_file, else {DEFAULT_LOCK})")
    diff.set_defaults(run=lambda args: run_command(diff_command, args))


def run_command(command: Any, args: argparse.Namespace) -> int:
    configure_logging("warning")  # on stderr; stdout carries the command's own output (a report may be JSON)
    try:
        return asyncio.run(command(args))
    except CommandError as error:
        print(f"mcp-sidecar: {error}", file=sys.stderr)
        return EXIT_ERROR


def load(args: argparse.Namespace) -> Config:
    overrides = {"upstream.url": args.upstream, "upstream.command": args.upstream_command,
                 "upstream.sse_url": args.upstream_sse, "auth.mode": "off"}
    try:
        return load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        raise CommandError("invalid configuration:\n  " + "\n  ".join(exc.problems)) from None


def upstream_source(config: Config) -> str:
    """The upstream as the operator named it: its URL or its command line."""
    upstream = config.upstream
    if isinstance(upstream, StdioUpstreamConfig):
        return " ".join(upstream.command)
    return upstream.sse_url if isinstance(upstream, SseUpstreamConfig) else str(upstream.http_url)


async def fetch(config: Config) -> Listing:
    """Everything the upstream lists, within its startup timeout (stdio, legacy SSE) or its request timeout (HTTP);
    CommandError when it cannot (a stdio server that fails to start is restarted by its supervisor meanwhile, as
    serve would; its last failure is reported)."""
    from proxy.upstream import create_upstream

    upstream = create_upstream(config)
    settings = config.upstream
    budget = settings.startup_timeout_seconds if isinstance(settings, ChannelSettings) else settings.timeout_seconds
    try:
        async with asyncio.timeout(budget):
            await upstream.start()
            return await list_everything(upstream)
    except TimeoutError:  # before OSError, of which it is a subclass
        ready, detail = await upstream.readiness()
        reason = f"no answer within {budget:g} s" + ("" if ready else f" ({detail})")
    except (ProxyError, ListingError, OSError) as exc:
        reason = getattr(exc, "message", None) or str(exc)
    finally:
        await upstream.close()
    raise CommandError(f"cannot list the upstream {upstream_source(config)}: {reason}")


def snapshot_of(listing: Listing) -> Snapshot:
    return Snapshot.from_definitions(listing.server, listing.definitions)


def lock_path(config: Config, given: str | None) -> Path:
    return Path(given or config.tools.lock_file or DEFAULT_LOCK)


async def lock_command(args: argparse.Namespace) -> int:
    config = load(args)
    path = lock_path(config, args.out)
    if path.exists() and not args.update:
        raise CommandError(f"{path} exists: review `mcp-sidecar tools diff`, then rewrite it with --update")
    live = snapshot_of(await fetch(config))
    if path.exists():
        previous = _previous(path)
        if previous is not None:
            sys.stdout.write(render(compare(previous, live)) or "no changes\n")
    try:
        write_lock(live, path)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None
    counts = ", ".join(f"{len(entries)} {kind.replace('_', ' ')}" for kind, entries in live.entries.items())
    print(f"wrote {path}: {counts} of {live.server.get('name', 'the server')} {live.server.get('version', '')}")
    return EXIT_OK


def _previous(path: Path) -> Snapshot | None:
    try:
        return read_lock(path)
    except LockFileError as exc:
        print(f"replacing a lock that does not load ({exc.reason})", file=sys.stderr)
        return None


async def diff_command(args: argparse.Namespace) -> int:
    config = load(args)
    path = lock_path(config, args.lock)
    try:
        locked = read_lock(path)
    except LockFileError as exc:
        raise CommandError(str(exc)) from None
    comparison = compare(locked, snapshot_of(await fetch(config)))
    if comparison.equal:
        print(f"the upstream matches {path}")
        return EXIT_OK
    sys.stdout.write(render(comparison))
    return EXIT_DIFFERS
