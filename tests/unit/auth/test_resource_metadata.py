"""RFC 9728's path form: the well-known prefix goes before the resource's path, on the resource's own origin."""

from __future__ import annotations

import pytest

from proxy.auth.resource_metadata import WELL_KNOWN, metadata_url
from proxy.config import ServerConfig


def test_the_well_known_path_is_rfc_9728s() -> None:
    assert WELL_KNOWN == "/.well-known/oauth-protected-resource"


@pytest.mark.parametrize(("public_url", "expected"), [
    ("https://mcp.example.com/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"),
    ("https://mcp.example.com/mcp/", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"),
    ("https://h:8443/tenant/a/mcp", "https://h:8443/.well-known/oauth-protected-resource/tenant/a/mcp"),
    ("https://mcp.example.com", "https://mcp.example.com/.well-known/oauth-protected-resource"),
])
def test_path_form_from_the_public_url(public_url: str, expected: str) -> None:
    assert metadata_url(ServerConfig(public_url=public_url)) == expected


def test_without_a_public_url_the_listen_address_and_mcp_path_are_used() -> None:
    server = ServerConfig(listen="127.0.0.1:9100", mcp_path="/v2/mcp")
    assert metadata_url(server) == "http://127.0.0.1:9100/.well-known/oauth-protected-resource/v2/mcp"
