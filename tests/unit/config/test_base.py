"""What every config section shares: frozen, unknown keys refused, host:port and Redis URL checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from proxy.config.base import (
    HEADER_NAME,
    RESERVED_UPSTREAM_HEADERS,
    Section,
    check_redis_url,
    parse_host_port,
)


class Sample(Section):
    size: int = 1


def test_a_section_is_frozen_and_refuses_unknown_keys() -> None:
    section = Sample(size=3)
    with pytest.raises(ValidationError, match="frozen"):
        section.size = 4  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Sample.model_validate({"size": 1, "sise": 2})


@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
    ("localhost:65535", ("localhost", 65535)),
    ("[::1]:9000", ("::1", 9000)),
])
def test_host_port_parses(value: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(value) == expected


@pytest.mark.parametrize("value", ["8080", ":8080", "host:", "host:65536", "host:-1", "host:http", ""])
def test_bad_host_port_names_the_value(value: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT") as caught:
        parse_host_port(value)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("url", ["redis://h:6379/0", "rediss://h:6380/1", "unix:///run/redis.sock"])
def test_redis_urls_pass_through(url: str) -> None:
    assert check_redis_url(url) == url


@pytest.mark.parametrize("url", ["http://h:6379", "h:6379", "", "REDIS://h"])
def test_other_urls_are_not_redis(url: str) -> None:
    with pytest.raises(ValueError, match="redis://, rediss:// or unix://"):
        check_redis_url(url)


def test_header_name_is_an_rfc9110_token() -> None:
    assert HEADER_NAME.fullmatch("X-Api-Key") and HEADER_NAME.fullmatch("authorization")
    for bad in ("X Api", "X:Key", "", "Ä", "x\r\n"):
        assert not HEADER_NAME.fullmatch(bad)


def test_reserved_headers_are_lower_case_and_include_the_transport_headers() -> None:
    assert all(name == name.lower() for name in RESERVED_UPSTREAM_HEADERS)
    assert {"host", "mcp-session-id", "mcp-protocol-version", "content-length"} <= RESERVED_UPSTREAM_HEADERS
    assert "authorization" not in RESERVED_UPSTREAM_HEADERS  # the one header operators configure most
