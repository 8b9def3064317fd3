"""RFC 9728 protected resource metadata: the document from config, served at both well-known paths when auth is on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from proxy.net.listener import HttpRequest, HttpResponse, Routes
from proxy.transport.oauth_metadata import add_routes, protected_resource_metadata
from tests.kit import make_config

ISSUER = "https://idp.example.com/realms/acme"


def auth_config(tmp_path: Path, **dotted: Any) -> Any:
    secret = tmp_path / "hmac"
    secret.write_text("s" * 40)
    settings = {"auth__mode": "required", "auth__hmac_secret_file": str(secret), "auth__issuers": [ISSUER],
                "server__public_url": "https://mcp.example.com/mcp", **dotted}
    return make_config(**settings)


def test_issuers_are_the_authorization_servers_by_default(tmp_path: Path) -> None:
    assert protected_resource_metadata(auth_config(tmp_path)) == {
        "resource": "https://mcp.example.com/mcp", "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"]}


def test_configured_servers_scopes_and_documentation(tmp_path: Path) -> None:
    config = auth_config(tmp_path, auth__authorization_servers=["https://as.example.com"],
                         auth__required_scopes=["mcp:tools"], auth__resource_documentation="https://docs.example")
    document = protected_resource_metadata(config)
    assert document["authorization_servers"] == ["https://as.example.com"]
    assert document["scopes_supported"] == ["mcp:tools"]  # required scopes, when none are listed as supported
    assert document["resource_documentation"] == "https://docs.example"
    listed = auth_config(tmp_path, auth__required_scopes=["a"], auth__scopes_supported=["a", "b"])
    assert protected_resource_metadata(listed)["scopes_supported"] == ["a", "b"]


async def test_both_paths_serve_the_document_cacheable(tmp_path: Path) -> None:
    routes = Routes()
    config = auth_config(tmp_path, server__mcp_path="/v1/mcp/")
    add_routes(routes, config)
    request = HttpRequest("GET", b"/", None, None)  # type: ignore[arg-type]
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/v1/mcp"):
        handler = routes.find("GET", path)
        assert not isinstance(handler, HttpResponse)
        response = await handler(request)
        assert isinstance(response, HttpResponse) and response.status == 200
        assert response.headers["Cache-Control"] == "max-age=3600"
        assert orjson.loads(response.body) == protected_resource_metadata(config)
    post = routes.find("POST", "/.well-known/oauth-protected-resource")
    assert isinstance(post, HttpResponse) and post.status == 405


def test_no_routes_with_auth_off() -> None:
    routes = Routes()
    add_routes(routes, make_config())
    found = routes.find("GET", "/.well-known/oauth-protected-resource")
    assert isinstance(found, HttpResponse) and found.status == 404
