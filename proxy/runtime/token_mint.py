"""`mcp-sidecar token mint`: a token signed with the development IdP's key, printed on stdout.

The issuer defaults to the URL a running `mcp-sidecar dev-idp` recorded in the shared state directory, and the
audience to the sidecar's resource URL as `serve` would compute it from the same environment
(`MCP_SIDECAR__SERVER__PUBLIC_URL`, `..._LISTEN`, `..._MCP_PATH`), so a token minted beside a sidecar is for it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt

from proxy.config import ServerConfig
from proxy.runtime.dev_idp import ALGORITHM, DEFAULT_STATE_DIR, EXIT_USAGE, issuer_file, load_or_create_key

SERVER_ENV = {"public_url": "MCP_SIDECAR__SERVER__PUBLIC_URL", "listen": "MCP_SIDECAR__SERVER__LISTEN",
              "mcp_path": "MCP_SIDECAR__SERVER__MCP_PATH"}


def mint(state_dir: Path, *, subject: str, issuer: str, audience: str, roles: Sequence[str] = (),
         scopes: Sequence[str] = (), lifetime_seconds: int = 3600, extra: Mapping[str, Any] | None = None) -> str:
    key = load_or_create_key(state_dir)
    now = int(time.time())
    claims: dict[str, Any] = {"iss": issuer, "sub": subject, "aud": audience, "iat": now,
                              "exp": now + lifetime_seconds, "jti": uuid.uuid4().hex, "roles": list(roles)}
    if scopes:
        claims["scope"] = " ".join(scopes)
    claims.update(extra or {})
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


def default_audience(env: Mapping[str, str]) -> str:
    settings = {key: env[name] for key, name in SERVER_ENV.items() if env.get(name)}
    return ServerConfig.model_validate(settings).resource_url


def recorded_issuer(state_dir: Path) -> str | None:
    path = issuer_file(state_dir)
    return path.read_text().strip() if path.exists() else None


def _words(values: Sequence[str] | None) -> list[str]:
    """`--roles a,b --roles c` and `--roles a b` alike."""
    return [word for value in values or () for word in value.replace(",", " ").split()]


def _claims(pairs: Sequence[str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--claim expects NAME=VALUE, got {pair!r}")
        found[name] = value
    return found


def add_parser(commands: Any) -> None:
    token = commands.add_parser("token", help="development tokens signed with the dev-idp key")
    actions = token.add_subparsers(title="token commands", required=True)
    parser = actions.add_parser("mint", help="print a token signed with the dev-idp key (development only)")
    parser.add_argument("--sub", required=True, help="the subject (the caller's id)")
    parser.add_argument("--roles", nargs="+", action="extend", help="roles (the `roles` claim): a b or a,b")
    parser.add_argument("--scopes", nargs="+", action="extend", help="scopes (the `scope` claim): a b or a,b")
    parser.add_argument("--claim", action="append", metavar="NAME=VALUE", help="another claim, e.g. plan=pro")
    parser.add_argument("--audience", help="`aud` (default: the sidecar's resource URL, http://127.0.0.1:8080/mcp "
                                           "unless MCP_SIDECAR__SERVER__* say otherwise)")
    parser.add_argument("--issuer-url", help="`iss` (default: the URL the running dev-idp recorded)")
    parser.add_argument("--lifetime", type=int, default=3600, help="seconds until `exp` (default %(default)s)")
    parser.add_argument("--state-dir", type=Path, default=Path(DEFAULT_STATE_DIR),
                        help="the dev-idp state directory (default %(default)s)")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    issuer = args.issuer_url or recorded_issuer(args.state_dir)
    if issuer is None:
        print(f"mcp-sidecar token mint: no issuer recorded in {args.state_dir}/: start `mcp-sidecar dev-idp` "
              "first or pass --issuer-url", file=sys.stderr)
        return EXIT_USAGE
    try:
        token = mint(args.state_dir, subject=args.sub, issuer=issuer.rstrip("/"),
                     audience=args.audience or default_audience(os.environ), roles=_words(args.roles),
                     scopes=_words(args.scopes), lifetime_seconds=args.lifetime, extra=_claims(args.claim))
    except ValueError as exc:
        print(f"mcp-sidecar token mint: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(token)
    return 0
