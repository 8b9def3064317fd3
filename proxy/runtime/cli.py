"""The `mcp-sidecar` command."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from proxy.config import ConfigError, load_config
from proxy.runtime import (
    approvals_cli,
    audit_cli,
    config_commands,
    dev_idp,
    policy_init,
    scan_cli,
    token_mint,
    tools_cli,
    traces,
)
from proxy.runtime.logs import configure_logging

EXIT_CONFIG = 2
DEMO_POLICY = Path(__file__).resolve().parents[1] / "policy" / "demo"


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        sys.exit(EXIT_CONFIG)
    sys.exit(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-sidecar", description="A sidecar reverse proxy for MCP servers.")
    parser.add_argument("--version", action="version", version=f"mcp-sidecar {version('mcp-sidecar')}")
    commands = parser.add_subparsers(title="commands")
    serve = commands.add_parser("serve", help="run the sidecar")
    serve.add_argument("--config", help="YAML or JSON config file")
    serve.add_argument("--listen", help="HOST:PORT for the MCP endpoint (default 127.0.0.1:8080)")
    serve.add_argument("--admin-listen", help="HOST:PORT for /healthz, /readyz (default 127.0.0.1:8081)")
    serve.add_argument("--upstream", help="Streamable HTTP URL of the MCP server")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port (SO_REUSEPORT; default 1)")
    serve.add_argument("--upstream-command", help='stdio MCP server to spawn, e.g. "npx -y some-mcp-server"')
    serve.add_argument("--upstream-sse", help="legacy HTTP+SSE (2024-11-05) URL of the MCP server")
    serve.add_argument("--demo", action="store_true",
                       help="spawn the bundled demo MCP server (stdio) as the upstream (auth off unless --dev-idp)")
    serve.add_argument("--dev-idp", metavar="URL",
                       help="trust the loopback `mcp-sidecar dev-idp` at URL (development only; auth required)")
    serve.set_defaults(run=_serve)
    _policy_commands(commands)
    config_commands.add_parser(commands)
    dev_idp.add_parser(commands)
    token_mint.add_parser(commands)
    tools_cli.add_tools_commands(commands)
    scan_cli.add_scan_command(commands)
    traces.add_parser(commands)
    approvals_cli.add_parser(commands)
    audit_cli.add_parser(commands)
    return parser


def _policy_commands(commands: Any) -> None:
    policy = commands.add_parser("policy", help="test, evaluate and check Rego policy directories")
    actions = policy.add_subparsers(title="policy commands", required=True)
    test = actions.add_parser("test", help="run the test_* rules of *_test.rego files (like `opa test`)")
    test.add_argument("directory", nargs="?", default="policies")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    test.set_defaults(run=lambda args: _policy_tool("test", args))
    evaluate = actions.add_parser("eval", help="print the decision for an input document")
    evaluate.add_argument("--input", required=True, help="input document, JSON or YAML")
    evaluate.add_argument("--dir", default="policies", help="policy directory (default: policies)")
    evaluate.add_argument("--rule", choices=["decision", "visible", "argument_names"], default="decision")
    evaluate.set_defaults(run=lambda args: _policy_tool("eval", args))
    check = actions.add_parser("check", help="compile a policy directory and report errors with file and line")
    check.add_argument("directory", nargs="?", default="policies")
    check.set_defaults(run=lambda args: _policy_tool("check", args))
    policy_init.add_parser(actions)


def _policy_tool(command: str, args: argparse.Namespace) -> int:
    from proxy.policy import tooling

    if command == "test":
        return tooling.test_command(Path(args.directory), args.verbose)
    if command == "eval":
        return tooling.eval_command(Path(args.dir), Path(args.input), args.rule)
    return tooling.check_command(Path(args.directory))


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "server.listen": args.listen,
        "server.admin_listen": args.admin_listen,
        "upstream.url": args.upstream,
        "server.workers": args.workers,
        "upstream.command": args.upstream_command,
        "upstream.sse_url": args.upstream_sse,
    }


def _serve(args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    if args.demo:
        overrides["upstream.command"] = [sys.executable, "-m", "proxy.runtime.demo", "stdio"]
    if args.demo and not args.dev_idp:
        overrides["auth.mode"] = "off"  # without an identity provider; docs/auth.md
        if args.config is None and not any(name.startswith("MCP_SIDECAR__POLICY__") for name in os.environ):
            overrides["policy.directory"] = str(DEMO_POLICY)  # loopback callers only; see proxy/policy/demo
    try:
        if args.dev_idp:
            overrides.update(dev_idp.sidecar_overrides(args.dev_idp))  # callers have roles: policies/ decides
        config = load_config(args.config, overrides=overrides)
    except ValueError as exc:
        return config_commands.report_config_error(ConfigError([str(exc)]))
    except ConfigError as exc:
        return config_commands.report_config_error(exc)
    configure_logging(config.logging.level)
    from proxy.policy.engine import PolicyLoadError
    from proxy.runtime.server import ListenError, run
    from proxy.tools.pinning import LockFileError

    try:
        return run(config)
    except ListenError as exc:
        print(f"mcp-sidecar: {exc}", file=sys.stderr)
        return 1
    except LockFileError as exc:
        print(f"mcp-sidecar: the tools lock {exc.path} cannot be used: {exc.reason}", file=sys.stderr)
        return EXIT_CONFIG
    except PolicyLoadError as exc:
        print(f"mcp-sidecar: the policy in {exc.directory} does not load:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    main()
