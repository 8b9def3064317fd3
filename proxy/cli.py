"""The `mcp-sidecar` command."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from proxy.config import ConfigError, load_config
from proxy.logs import configure_logging

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        sys.exit(EXIT_CONFIG)
    sys.exit(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-sidecar", description="A sidecar reverse proxy for MCP servers.")
    commands = parser.add_subparsers(title="commands")
    serve = commands.add_parser("serve", help="run the sidecar")
    serve.add_argument("--config", help="YAML or JSON config file")
    serve.add_argument("--listen", help="HOST:PORT for the MCP endpoint (default 127.0.0.1:8080)")
    serve.add_argument("--admin-listen", help="HOST:PORT for /healthz, /readyz (default 127.0.0.1:8081)")
    serve.add_argument("--upstream", help="Streamable HTTP URL of the MCP server")
    serve.add_argument("--upstream-command", help='stdio MCP server to spawn, e.g. "npx -y some-mcp-server"')
    serve.add_argument("--upstream-sse", help="legacy HTTP+SSE (2024-11-05) URL of the MCP server")
    serve.add_argument("--demo", action="store_true",
                       help="spawn the bundled demo MCP server (stdio) as the upstream (and set auth.mode off)")
    serve.set_defaults(run=_serve)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "server.listen": args.listen,
        "server.admin_listen": args.admin_listen,
        "upstream.url": args.upstream,
        "upstream.command": args.upstream_command,
        "upstream.sse_url": args.upstream_sse,
    }


def _serve(args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    if args.demo:
        overrides["upstream.command"] = [sys.executable, "-m", "proxy.demo", "stdio"]
        overrides["auth.mode"] = "off"  # the quickstart runs without an identity provider; see README
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print("mcp-sidecar: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.logging.level)
    from proxy.server import run

    run(config)
    return 0


if __name__ == "__main__":
    main()
