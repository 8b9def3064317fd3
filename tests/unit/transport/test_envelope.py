"""The HTTP envelope: the sidecar's own origins and the headers it relays (no sockets)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from proxy.transport.envelope import forwarded_headers, own_origins


@pytest.mark.parametrize(("listen", "expected"), [
    ("127.0.0.1:8080", {"http://127.0.0.1:8080", "http://localhost:8080"}),
    ("localhost:8080", {"http://localhost:8080"}),
    ("[::1]:8080", {"http://[::1]:8080", "http://localhost:8080"}),
    ("10.1.2.3:9000", {"http://10.1.2.3:9000"}),
    ("0.0.0.0:8080", set()),
])
def test_own_origins_follow_the_listen_address(listen: str, expected: set[str]) -> None:
    assert own_origins(listen, None) == expected


def test_behind_tls_the_own_origins_are_https() -> None:
    assert own_origins("127.0.0.1:8443", None, "https") == {"https://127.0.0.1:8443", "https://localhost:8443"}


def test_public_url_adds_its_origin() -> None:
    assert own_origins("0.0.0.0:8080", "https://mcp.example.com/mcp") == {"https://mcp.example.com"}


def test_other_ports_and_rebinding_hosts_are_not_own_origins() -> None:
    origins = own_origins("127.0.0.1:8080", None)
    assert "http://127.0.0.1:8081" not in origins
    assert "http://evil.example.com:8080" not in origins
    assert "https://127.0.0.1:8080" not in origins


def test_forwarded_headers_keep_mcp_names_lower_cased_and_drop_the_rest() -> None:
    sent = CIMultiDict([("MCP-Protocol-Version", "2026-07-28"), ("Authorization", "Bearer secret"),
                        ("Mcp-Param-Region", "eu"), ("Cookie", "a=b"), ("traceparent", "00-1-2-01"), ("Host", "x")])
    expected = {"mcp-protocol-version": "2026-07-28", "mcp-param-region": "eu", "traceparent": "00-1-2-01"}
    assert forwarded_headers(sent) == expected
    assert forwarded_headers(sent) == expected  # names seen before give the same answer
    assert forwarded_headers(CIMultiDict([("AUTHORIZATION", "Bearer secret"), ("mcp-method", "tools/call")])) == {
        "mcp-method": "tools/call"}
