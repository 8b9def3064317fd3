"""`mcp-sidecar scan`: the security report of a live upstream (reached as `serve` would) or of a saved tools/list
result, with drift against the lock and the configured policy's coverage when there is one.

Exit status: 0, or 1 when --fail-on / --fail-under holds, 2 when the scan could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml

from proxy.config import CacheConfig, Config, PolicyConfig, RateLimitsConfig
from proxy.runtime.policy_probe import CoverageCheck
from proxy.runtime.tools_cli import (
    EXIT_DIFFERS,
    EXIT_OK,
    CommandError,
    add_upstream_options,
    fetch,
    load,
    run_command,
    upstream_source,
)
from proxy.timestamps import utc_text
from proxy.tools.coverage import Coverage, principals_from
from proxy.tools.drift import compare
from proxy.tools.findings import Severity, at_least
from proxy.tools.pinning import LockFileError, Snapshot, read_lock
from proxy.tools.report import to_json, to_markdown, to_sarif
from proxy.tools.report_html import to_html
from proxy.tools.scan import Report, build_report

if TYPE_CHECKING:
    from proxy.policy.loader import PolicySource

FORMATS = {"markdown": to_markdown, "json": to_json, "sarif": to_sarif, "html": to_html}


def add_scan_command(commands: Any) -> None:
    scan = commands.add_parser("scan", help="security report: risky tools, poisoning, drift, policy coverage")
    add_upstream_options(scan)
    scan.add_argument("--tools-file", help="scan a saved tools/list result (JSON) instead of a live upstream")
    scan.add_argument("--lock", help="compare with this lock file (default: tools.lock_file when set)")
    scan.add_argument("--policy-dir", help="policy directory to evaluate (default: the configured policy)")
    scan.add_argument("--as", dest="principals", action="append", default=[], metavar="FILE",
                      help="a principal (JSON/YAML: sub, roles, claims, ...) to evaluate the policy for; repeatable")
    scan.add_argument("--format", choices=sorted(FORMATS), default="markdown")
    scan.add_argument("--out", help="write the report here instead of stdout")
    scan.add_argument("--fail-on", choices=[s.value for s in Severity], help="exit 1 on a finding this severe")
    scan.add_argument("--fail-under", type=int, metavar="SCORE", help="exit 1 when the score is below SCORE")
    scan.set_defaults(run=lambda args: run_command(scan_command, args))


async def scan_command(args: argparse.Namespace) -> int:
    report = await make_report(args)
    text = FORMATS[args.format](report)
    if args.out:
        try:
            await asyncio.to_thread(Path(args.out).write_text, text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {args.out}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
    return failure_status(report, args.fail_on, args.fail_under)


def failure_status(report: Report, fail_on: str | None, fail_under: int | None) -> int:
    findings = [item for _, item in report.findings]
    failed = (fail_on is not None and bool(at_least(findings, Severity(fail_on)))) or (
        fail_under is not None and report.score < fail_under)
    return EXIT_DIFFERS if failed else EXIT_OK


async def make_report(args: argparse.Namespace) -> Report:
    live = args.tools_file is None
    config = load(args) if live or args.config else None
    if live:
        assert config is not None
        listing = await fetch(config)
        server, definitions, source = listing.server, listing.definitions, upstream_source(config)
    else:
        server, definitions = read_tools_file(Path(args.tools_file))
        source = args.tools_file
    lock = args.lock or (config.tools.lock_file if config is not None else None)
    comparison = None
    if lock is not None:
        comparison = compare(_read_lock(Path(lock)), Snapshot.from_definitions(server, definitions))
    coverage, note = await evaluate_policy(args, config, definitions)
    return build_report(generated_at=utc_text(time.time_ns()), source=source, server=server,
                        definitions=definitions, comparison=comparison, lock=lock, coverage=coverage,
                        policy_note=note, artifact=args.config or lock or args.tools_file)


def _read_lock(path: Path) -> Snapshot:
    try:
        return read_lock(path)
    except LockFileError as exc:
        raise CommandError(str(exc)) from None


def read_tools_file(path: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """A saved tools/list result: the result object, a JSON-RPC response holding it, or a bare list of tools."""
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise CommandError(f"cannot read the tools/list result {path}: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("result"), dict):
        document = document["result"]
    tools = document if isinstance(document, list) else document.get("tools") if isinstance(document, dict) else None
    if not isinstance(tools, list):
        raise CommandError(f"{path}: expected a tools/list result (an object with a tools list)")
    meta = document.get("_meta") if isinstance(document, dict) and isinstance(document.get("_meta"), dict) else {}
    server = meta.get("io.modelcontextprotocol/serverInfo") or {"name": path.stem}
    return server, {"tools": tools}


async def evaluate_policy(args: argparse.Namespace, config: Config | None,
                          definitions: dict[str, list[dict[str, Any]]]) -> tuple[Coverage | None, str]:
    settings = _policy_settings(args, config)
    if isinstance(settings, str):
        return None, settings
    from proxy.policy.engine import PolicyLoadError
    from proxy.policy.factory import build_engine
    from proxy.policy.rego import PolicyCompileError

    directory = Path(settings.directory)
    try:
        engine = build_engine(settings, directory, label="scan")
        source = await asyncio.to_thread(_read_if_present, directory)
    except (PolicyLoadError, PolicyCompileError) as exc:
        raise CommandError(f"the policy in {directory} does not load:\n  " + "\n  ".join(exc.problems)) from None
    principals = principals_from(source.data if source else {}, [_principal_file(Path(p)) for p in args.principals])
    text = "\n".join([*source.modules.values(), orjson.dumps(source.data).decode()]) if source else None
    check = CoverageCheck(engine, config.upstream.name if config else "upstream",
                          config.rate_limits if config else RateLimitsConfig(),
                          config.cache if config else CacheConfig(), text)
    tools = {d["name"]: d for d in definitions.get("tools", []) if isinstance(d.get("name"), str)}
    try:
        coverage = await check.run(tools, principals)
    finally:
        await engine.close()
    where = f"{settings.engine} policy {directory}" if settings.engine == "rego" else f"OPA at {settings.opa_url}"
    return coverage, f"evaluated the {where} (revision {coverage.revision}) for {len(principals)} principals"


def _read_if_present(directory: Path) -> PolicySource | None:
    from proxy.policy.loader import read_source

    return read_source(directory) if directory.is_dir() else None


def _policy_settings(args: argparse.Namespace, config: Config | None) -> PolicyConfig | str:
    """The policy to evaluate, or the reason none is."""
    if args.policy_dir:
        base = config.policy if config is not None and config.policy.engine == "rego" else PolicyConfig()
        return base.model_copy(update={"directory": args.policy_dir, "reload": False, "on_load_error": "exit"})
    if config is None or config.policy.engine == "off":
        return "not evaluated (no policy directory given, and policy.engine is off or no config was given)"
    if config.policy.engine == "rego" and not Path(config.policy.directory).is_dir():
        return f"not evaluated (the configured policy directory {config.policy.directory} does not exist)"
    return config.policy.model_copy(update={"reload": False, "on_load_error": "exit"})


def _principal_file(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CommandError(f"cannot read the principal {path}: {exc}") from None
    if not isinstance(document, dict):
        raise CommandError(f"{path}: a principal is a mapping (sub, issuer, claims, scopes, roles, authenticated)")
    return document
