"""`mcp-sidecar dev-idp`: a local identity provider for development only.

It holds one RSA signing key in a state directory (created on first use, mode 0600), serves its JWKS and
OpenID/OAuth metadata over HTTP on a loopback address, and never issues tokens over the network: `mcp-sidecar
token mint` (proxy/runtime/token_mint.py) signs them offline with the same key. `serve --dev-idp URL` points the
sidecar at it. It refuses any non-loopback address: it has no users, no passwords and no consent.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import ipaddress
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from proxy.config import parse_host_port

DEFAULT_STATE_DIR = ".dev-idp"
DEFAULT_LISTEN = "127.0.0.1:9400"
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
ALGORITHM = "RS256"
EXIT_USAGE = 2


class NotLoopbackError(ValueError):
    """The development IdP, and a sidecar trusting it, stay on this machine."""


@dataclass(frozen=True)
class DevKey:
    private: rsa.RSAPrivateKey

    @property
    def public_jwk(self) -> dict[str, Any]:
        return json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))

    @property
    def kid(self) -> str:
        """The RFC 7638 thumbprint: the same key always has the same id."""
        jwk = self.public_jwk
        canonical = json.dumps({name: jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":"))
        return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self.public_jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}]}


def load_or_create_key(state_dir: Path) -> DevKey:
    """The key in `state_dir/signing-key.pem`, made on first use; two processes starting at once agree on one."""
    path = state_dir / "signing-key.pem"
    state_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use that one
        else:
            with os.fdopen(descriptor, "wb") as out:
                out.write(pem)
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return DevKey(private)


def issuer_file(state_dir: Path) -> Path:
    """Where a running dev IdP records its issuer URL, for `token mint` to default to."""
    return state_dir / "issuer"


def require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotLoopbackError(f"{host!r} is not a loopback address: the development IdP stays on this machine")


def sidecar_overrides(url: str) -> dict[str, Any]:
    """Config overrides for `serve --dev-idp URL`: required auth with the dev IdP's keys and issuer (the audience
    stays the sidecar's own resource URL)."""
    issuer = url.rstrip("/")
    parts = urlsplit(issuer)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"--dev-idp: expected http://HOST:PORT, got {url!r}")
    require_loopback(parts.hostname)
    return {"auth.mode": "required", "auth.jwks_url": issuer + JWKS_PATH, "auth.issuers": [issuer],
            "auth.algorithms": [ALGORITHM]}


def metadata(issuer: str) -> dict[str, Any]:
    """RFC 8414 / OpenID discovery metadata: keys only, no endpoints (tokens come from `token mint`)."""
    return {"issuer": issuer, "jwks_uri": issuer + JWKS_PATH, "response_types_supported": [],
            "grant_types_supported": [], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "development_only": ("mcp-sidecar dev-idp, for development only: tokens are minted locally by "
                                 "`mcp-sidecar token mint`; never trust this issuer in production")}


@dataclass
class Issuer:
    """The issuer URL, known once the port is bound (the listen address may ask for port 0)."""

    url: str = ""


def build_app(key: DevKey, issuer: Issuer) -> Any:
    from aiohttp import web

    async def jwks(_request: web.Request) -> web.Response:
        return web.json_response(key.jwks())

    async def discovery(_request: web.Request) -> web.Response:
        return web.json_response(metadata(issuer.url))

    app = web.Application()
    app.router.add_get(JWKS_PATH, jwks)
    for path in METADATA_PATHS:
        app.router.add_get(path, discovery)
    return app


async def serve(listen: str, state_dir: Path) -> None:
    """Listen until SIGTERM or SIGINT; the issuer URL (with the port actually bound) goes to stdout and to the
    state directory."""
    from aiohttp import web

    host, port = parse_host_port(listen)
    require_loopback(host)
    key, issuer = load_or_create_key(state_dir), Issuer()
    runner = web.AppRunner(build_app(key, issuer), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        issuer.url = f"http://{f'[{host}]' if ':' in host else host}:{runner.addresses[0][1]}"
        issuer_file(state_dir).write_text(issuer.url + "\n")
        print(f"mcp-sidecar dev-idp (development only): issuer {issuer.url}, key {key.kid} in {state_dir}/",
              flush=True)
        await _until_signalled()
    finally:
        await runner.cleanup()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("dev-idp", help="a local identity provider for development only (loopback)")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="loopback HOST:PORT (default %(default)s; port 0: "
                                                                  "any free port)")
    parser.add_argument("--state-dir", type=Path, default=Path(DEFAULT_STATE_DIR),
                        help="where the signing key lives, shared with `token mint` (default %(default)s)")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    try:
        asyncio.run(serve(args.listen, args.state_dir))
    except ValueError as exc:
        print(f"mcp-sidecar dev-idp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"mcp-sidecar dev-idp: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
