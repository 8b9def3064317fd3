"""`mcp-sidecar approvals list|show|approve|deny`: the admin API of a running sidecar, from a terminal.

The credential comes from `--token-file` or `MCP_SIDECAR_ADMIN_TOKEN` (never a flag: it would show in `ps`).
`approve` and `deny` first read the approval and print what they decide on; the decision names the hash of exactly
those arguments (or `--arguments-hash`, the one you were shown elsewhere), so it cannot release another call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TOKEN_ENV = "MCP_SIDECAR_ADMIN_TOKEN"
EXIT_USAGE = 2


class AdminApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def add_parser(commands: Any) -> None:
    approvals = commands.add_parser("approvals", help="list, show and decide calls waiting for approval")
    approvals.add_argument("--admin", default=os.environ.get("MCP_SIDECAR_ADMIN_URL", "http://127.0.0.1:8081"),
                           help="the admin listener's URL (default $MCP_SIDECAR_ADMIN_URL or http://127.0.0.1:8081)")
    approvals.add_argument("--token-file", help=f"file holding the admin bearer token (default ${TOKEN_ENV})")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print the API's JSON")
    actions = approvals.add_subparsers(title="approvals commands", required=True)
    actions.add_parser("list", help="the calls waiting now", parents=[output]).set_defaults(run=_run, action="list")
    show = actions.add_parser("show", help="one waiting call, with its arguments as approvers see them",
                              parents=[output])
    show.add_argument("id")
    show.set_defaults(run=_run, action="show")
    for verdict in ("approve", "deny"):
        decide = actions.add_parser(verdict, help=f"{verdict} a waiting call", parents=[output])
        decide.add_argument("id")
        decide.add_argument("--note", default="", help="a note for the caller and the audit trail")
        decide.add_argument("--arguments-hash", help="decide only if the call's arguments still have this hash")
        decide.set_defaults(run=_run, action=verdict)


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        return Path(args.token_file).read_text().strip()
    return os.environ.get(TOKEN_ENV) or None


def request(base: str, token: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    call = urllib.request.Request(base.rstrip("/") + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("error", error.reason)
        except ValueError:
            message = error.reason
        raise AdminApiError(error.code, str(message)) from None


def describe(item: dict[str, Any]) -> str:
    lines = [f"{item['id']}  {item.get('principal')} -> {item.get('target') or item.get('method')}",
             f"  waiting since {item.get('created')}, until {item.get('expires')}"]
    if item.get("reasons"):
        lines.append("  why: " + "; ".join(item["reasons"]))
    if item.get("arguments_shown") != "none":
        lines.append("  arguments: " + json.dumps(item.get("arguments"), sort_keys=True))
    if item.get("annotations"):
        hints = [name.removesuffix("Hint") for name, on in sorted(item["annotations"].items()) if on is True]
        lines.append("  annotations: " + ", ".join(hints))
    lines.append(f"  arguments hash: {item.get('arguments_hash')}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    try:
        token = _token(args)
    except OSError as error:
        print(f"mcp-sidecar: cannot read {args.token_file}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _act(args, token)
    except AdminApiError as error:
        print(f"mcp-sidecar: HTTP {error.status}: {error}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"mcp-sidecar: cannot reach {args.admin}: {getattr(error, 'reason', error)}", file=sys.stderr)
        return 1


def _act(args: argparse.Namespace, token: str | None) -> int:
    if args.action == "list":
        pending = request(args.admin, token, "GET", "/approvals")["pending"]
        print(json.dumps(pending, indent=2) if args.json else
              "\n".join(describe(item) for item in pending) or "no calls are waiting")
        return 0
    item = request(args.admin, token, "GET", f"/approvals/{args.id}")
    if args.action == "show":
        print(json.dumps(item, indent=2) if args.json else describe(item))
        return 0
    digest = args.arguments_hash or item["arguments_hash"]
    print(describe(item), file=sys.stderr)
    result = request(args.admin, token, "POST", f"/approvals/{args.id}/{args.action}",
                     {"arguments_hash": digest, "note": args.note})
    verb = {"approve": "approved", "deny": "denied"}[args.action]
    print(json.dumps(result) if args.json else f"{verb} {args.id} as {result.get('approver')}")
    return 0
