"""The `mcp-sidecar` command."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
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
    serve.add_argument("--workers", type=int, help="worker processes sharing the port (SO_REUSEPORT; default 1)")
    serve.add_argument("--demo", action="store_true",
                       help="start the bundled demo MCP server as the upstream (and set auth.mode off)")
    serve.set_defaults(run=_serve)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "server.listen": args.listen,
        "server.admin_listen": args.admin_listen,
        "upstream.url": args.upstream,
        "server.workers": args.workers,
    }


def _serve(args: argparse.Namespace) -> int:
    demo = _start_demo_upstream() if args.demo else None
    overrides = _overrides(args)
    if demo is not None:
        overrides["upstream.url"] = demo[1]
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

    try:
        return run(config)
    finally:
        if demo is not None:
            demo[0].terminate()
            demo[0].wait(timeout=10)


def _start_demo_upstream() -> tuple[subprocess.Popen[bytes], str]:
    """The bundled demo server on a free loopback port, for the quickstart."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-m", "proxy.demo", "http", "--port", str(port)],
        stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return child, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            time.sleep(0.1)
    child.kill()
    raise SystemExit("mcp-sidecar: the demo MCP server did not start")


if __name__ == "__main__":
    main()
