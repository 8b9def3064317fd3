"""OAuth 2.0 Protected Resource Metadata (RFC 9728): how a client finds the authorization server for this sidecar."""

from __future__ import annotations

from typing import Any

from proxy.auth.resource_metadata import WELL_KNOWN
from proxy.config import Config
from proxy.net.listener import HttpRequest, HttpResponse, Routes


def protected_resource_metadata(config: Config) -> dict[str, Any]:
    auth = config.auth
    document: dict[str, Any] = {
        "resource": config.server.resource_url,
        "authorization_servers": list(auth.authorization_servers or auth.issuers),
        "bearer_methods_supported": ["header"],
    }
    scopes = auth.scopes_supported or auth.required_scopes
    if scopes:
        document["scopes_supported"] = list(scopes)
    if auth.resource_documentation:
        document["resource_documentation"] = auth.resource_documentation
    return document


def add_routes(routes: Routes, config: Config) -> None:
    """Both the root and the path form (clients try `/.well-known/oauth-protected-resource/mcp` first)."""
    if config.auth.mode == "off":
        return
    document = HttpResponse.json(protected_resource_metadata(config), headers={"Cache-Control": "max-age=3600"})

    async def serve(request: HttpRequest) -> HttpResponse:
        return document

    routes.add("GET", WELL_KNOWN, serve)
    routes.add("GET", WELL_KNOWN + config.server.mcp_path.rstrip("/"), serve)
