"""`mcp-sidecar audit tail|query`: the audit file (`audit.sink: file`) with the console's filters, from a terminal.

`query` prints every matching event in the file (oldest first, the last `--limit`); `tail` the last `-n`, and with
`--follow` the new ones as they are written, reopening the file when it is rotated. Lines that are not audit events
(or not JSON) are skipped and counted on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO, Any

from proxy.audit import FILTERS, matches
from proxy.config import ConfigError, load_config

EXIT_USAGE = 2
FOLLOW_POLL_SECONDS = 0.2
COLUMNS = ("ts", "principal", "method", "target", "outcome", "approver", "latency_ms")


def add_parser(commands: Any) -> None:
    audit = commands.add_parser("audit", help="read the audit file: tail it or query it by principal, tool, outcome")
    common = argparse.ArgumentParser(add_help=False)
    source = common.add_mutually_exclusive_group()
    source.add_argument("--file", help="the audit file (default: audit.path of --config)")
    source.add_argument("--config", help="the sidecar's config file, for its audit.path")
    for name in FILTERS:
        common.add_argument(f"--{name}", help=f"only events whose {name} is exactly this")
    common.add_argument("--since", type=_moment, help="only calls started at or after this RFC 3339 time "
                                                      "(e.g. 2026-12-08T02:00:00Z)")
    common.add_argument("--json", action="store_true", help="print the events as JSON lines")
    actions = audit.add_subparsers(title="audit commands", required=True)
    query = actions.add_parser("query", parents=[common], help="every matching event in the file")
    query.add_argument("--limit", type=int, default=1000, help="at most this many, the newest (default 1000)")
    query.set_defaults(run=_run, follow=False, action="query")
    tail = actions.add_parser("tail", parents=[common], help="the last matching events, and new ones with -f")
    tail.add_argument("-n", "--lines", dest="limit", type=int, default=20, help="how many (default 20)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing events as they are written")
    tail.set_defaults(run=_run, action="tail")


def _moment(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (Z or +HH:MM): {text!r}")
    return moment.timestamp()


def _path(args: argparse.Namespace) -> str:
    if args.file:
        return str(args.file)
    config = load_config(args.config)
    if config.audit.sink != "file" or not config.audit.path:
        raise ValueError("the configuration writes audit events to stdout: give --file")
    return config.audit.path


def events(lines: Iterable[bytes], skipped: list[int]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict) and event.get("event") == "mcp.audit":
            yield event
        elif line.strip():
            skipped[0] += 1


def selected(args: argparse.Namespace, event: dict[str, Any]) -> bool:
    filters = {name: getattr(args, name) for name in FILTERS}
    return matches(event, filters) and (args.since is None or float(event.get("time") or 0) >= args.since)


def render(event: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(event, sort_keys=True)
    return "  ".join("-" if event.get(column) is None else str(event[column]) for column in COLUMNS)


def _run(args: argparse.Namespace) -> int:
    try:
        path = _path(args)
        handle = open(path, "rb")  # noqa: SIM115 (kept open while following)
    except ConfigError as error:
        print("mcp-sidecar: invalid configuration:\n  " + "\n  ".join(error.problems), file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError) as error:
        print(f"mcp-sidecar: {getattr(error, 'strerror', None) or error}", file=sys.stderr)
        return EXIT_USAGE
    skipped = [0]
    with handle:
        last = deque((e for e in events(handle, skipped) if selected(args, e)), maxlen=max(0, args.limit))
        for event in last:
            print(render(event, args.json), flush=True)
        if skipped[0]:
            print(f"mcp-sidecar: skipped {skipped[0]} lines that are not audit events", file=sys.stderr)
        if args.follow:
            with contextlib.suppress(KeyboardInterrupt):
                _follow(args, path, handle)
    return 0


def _follow(args: argparse.Namespace, path: str, handle: IO[bytes]) -> None:
    """New complete lines as they come; a rotated or truncated file is reopened from its start."""
    skipped, partial = [0], b""
    identity = os.fstat(handle.fileno()).st_ino
    while True:
        chunk = handle.read()
        if chunk:
            *lines, partial = (partial + chunk).split(b"\n")
            for event in events(lines, skipped):
                if selected(args, event):
                    print(render(event, args.json), flush=True)
            continue
        time.sleep(FOLLOW_POLL_SECONDS)
        try:
            info = os.stat(path)
        except OSError:
            continue  # between the rotation's rename and the new file
        if info.st_ino != identity or info.st_size < handle.tell():
            handle.close()
            handle = open(path, "rb")  # noqa: SIM115
            identity, partial = os.fstat(handle.fileno()).st_ino, b""
