"""Admin authentication over real sockets: every admin route with no, wrong, viewer, approver and admin
credentials, static tokens and JWTs, the tokens file re-read on change, and the refusal to run an open admin
listener off loopback."""

from __future__ import annotations

import os
import subprocess
import sys

import aiohttp
import pytest

from tests.idp import ISSUER, claims_for, make_token, new_key
from tests.kit import child_env, free_port, make_config, run_sidecar

TOKENS = {"viewer": "view-token-0123456789", "approver": "approve-token-0123456789",
          "admin": "admin-token-0123456789"}
LEVEL = {"viewer": 0, "approver": 1, "admin": 2}

# (method, path, permission needed; None: open)
ROUTES = [
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
    ("GET", "/cache/stats", "viewer"),
    ("POST", "/cache/purge", "admin"),
    ("GET", "/tools/report", "viewer"),
    ("GET", "/approvals", "viewer"),
    ("GET", "/approvals/0123", "viewer"),
    ("POST", "/approvals/0123/approve", "approver"),
    ("POST", "/approvals/0123/deny", "approver"),
    ("GET", "/console", "viewer"),
    ("GET", "/console/api/me", "viewer"),
    ("GET", "/console/api/overview", "viewer"),
    ("GET", "/console/api/calls", "viewer"),
    ("GET", "/console/api/tools", "viewer"),
    ("GET", "/no-such-route", "admin"),  # undeclared: closed
]
CREDENTIALS = [None, "wrong", "viewer", "approver", "admin"]


def tokens_file(tmp_path, tokens: dict[str, str] = TOKENS) -> str:
    path = tmp_path / "admin-tokens"
    lines = ["# name permission token", *(f"{permission}-bot {permission} {token}  # a comment"
                                          for permission, token in tokens.items())]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def expected(needed: str | None, credential: str | None) -> int | None:
    """401 without a valid credential, 403 with too little permission, else whatever the route answers."""
    if needed is None:
        return None
    if credential not in LEVEL:
        return 401
    return 403 if LEVEL[credential] < LEVEL[needed] else None


async def status_of(http: aiohttp.ClientSession, base: str, method: str, path: str, header: str | None) -> int:
    headers = {"Authorization": header} if header else {}
    body = {"arguments_hash": "sha256:0"} if method == "POST" and "/approvals/" in path else None
    async with http.request(method, base + path, headers=headers, json=body) as response:
        await response.read()
        return response.status


@pytest.mark.parametrize("credential", CREDENTIALS)
async def test_every_route_with_static_tokens(stateless_upstream, tmp_path, credential) -> None:
    config = make_config(stateless_upstream, admin__auth={"tokens_file": tokens_file(tmp_path)})
    header = None if credential is None else f"Bearer {TOKENS.get(credential, 'not-a-token-at-all-xx')}"
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        for method, path, needed in ROUTES:
            status = await status_of(http, sidecar.admin_url, method, path, header)
            want = expected(needed, credential)
            if want is None:
                assert status not in (401, 403), (method, path, credential, status)
            else:
                assert status == want, (method, path, credential, status)


async def test_401_carries_a_bearer_challenge_and_the_console_its_login_form(stateless_upstream, tmp_path) -> None:
    config = make_config(stateless_upstream, admin__auth={"tokens_file": tokens_file(tmp_path)})
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        async with http.get(sidecar.admin_url + "/approvals") as response:
            assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer ")
        async with http.get(sidecar.admin_url + "/console") as response:
            page = await response.text()
            assert response.status == 401 and 'id="login"' in page
            assert "script-src 'sha256-" in response.headers["Content-Security-Policy"]
        async with http.get(sidecar.admin_url + "/console/api/me",
                            headers={"Authorization": f"Bearer {TOKENS['approver']}"}) as response:
            assert await response.json() == {"name": "approver-bot", "permission": "approver",
                                             "can": ["viewer", "approver"]}


JWT_CASES = {  # roles in the token -> the credential level it should act as (None: 403 everywhere)
    "viewer": ["mcp-sidecar:viewer"],
    "approver": ["mcp-sidecar:approver"],
    "admin": ["other", "mcp-sidecar:admin"],
}


@pytest.mark.parametrize("level", [*JWT_CASES, "no-role", "wrong-key"])
async def test_every_route_with_jwts(stateless_upstream, tmp_path, key_a, level) -> None:
    pem = tmp_path / "idp.pem"
    pem.write_bytes(key_a.public_pem)
    config = make_config(stateless_upstream, auth__mode="required", auth__public_key_files=[str(pem)],
                         auth__issuers=[ISSUER], admin__auth={"jwt": True})
    audience = config.server.resource_url
    signer = new_key("other") if level == "wrong-key" else key_a
    token = make_token(signer, claims_for(audience, sub="alice", roles=JWT_CASES.get(level, ["reader"])))
    credential = level if level in JWT_CASES else "wrong"
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        for method, path, needed in ROUTES:
            status = await status_of(http, sidecar.admin_url, method, path, f"Bearer {token}")
            want = expected(needed, credential)
            if level == "no-role" and needed is not None:
                want = 403  # verified, but no admin permission at all
            if want is None:
                assert status not in (401, 403), (method, path, level, status)
            else:
                assert status == want, (method, path, level, status)


async def test_metrics_can_require_a_viewer(stateless_upstream, tmp_path) -> None:
    config = make_config(stateless_upstream, admin__auth={"tokens_file": tokens_file(tmp_path)},
                         admin__metrics_require_auth=True)
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        assert await status_of(http, sidecar.admin_url, "GET", "/metrics", None) == 401
        viewer = f"Bearer {TOKENS['viewer']}"
        assert await status_of(http, sidecar.admin_url, "GET", "/metrics", viewer) not in (401, 403)
        assert await status_of(http, sidecar.admin_url, "GET", "/healthz", None) == 200


async def test_a_rotated_tokens_file_is_read_again(stateless_upstream, tmp_path) -> None:
    path = tokens_file(tmp_path)
    config = make_config(stateless_upstream, admin__auth={"tokens_file": path, "check_seconds": 0})
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        old = f"Bearer {TOKENS['viewer']}"
        assert await status_of(http, sidecar.admin_url, "GET", "/approvals", old) == 200
        replacement = tmp_path / "next"
        replacement.write_text("carol viewer fresh-token-0123456789\n")
        os.replace(replacement, path)  # as a Kubernetes secret rotates: a new file in its place
        assert await status_of(http, sidecar.admin_url, "GET", "/approvals", old) == 401
        assert await status_of(http, sidecar.admin_url, "GET", "/approvals",
                               "Bearer fresh-token-0123456789") == 200


def test_an_open_admin_listener_off_loopback_refuses_to_start(stateless_upstream) -> None:
    args = [sys.executable, "-m", "proxy", "serve", "--upstream", stateless_upstream,
            "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"0.0.0.0:{free_port()}"]
    done = subprocess.run(args, env=child_env(MCP_SIDECAR__AUTH__MODE="off"), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    assert "admin.auth" in done.stderr and "admin.allow_unauthenticated" in done.stderr


def test_a_bad_tokens_file_fails_at_startup(tmp_path) -> None:
    path = tmp_path / "tokens"
    path.write_text("alice superuser token-0123456789abcdef\n")
    with pytest.raises(ValueError, match="line 1"):
        from proxy.runtime.app import create_apps
        create_apps(make_config(admin__auth={"tokens_file": str(path)}))
