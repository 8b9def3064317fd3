"""What every config section shares."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section. The docstring under each field is its documentation: `python -m proxy.config.reference`
    turns them into docs/configuration.md. `Field(json_schema_extra={"secret": True})` marks a secret, which
    `mcp-sidecar config check` masks."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


MIN_KEY_BYTES = 32


def check_key_file(path: str | None, what: str = "a signing key") -> str | None:
    """A readable file holding a secret of at least MIN_KEY_BYTES (a trailing newline does not count)."""
    if path is not None:
        try:
            key = Path(path).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"{path}: {what} needs at least {MIN_KEY_BYTES} bytes")
    return path


def check_redis_url(value: str) -> str:
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return value


def parse_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


# A header name (RFC 9110 token), and the headers configured upstream headers may never set.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
RESERVED_UPSTREAM_HEADERS = frozenset(
    {"host", "content-length", "content-type", "accept", "connection", "transfer-encoding", "mcp-session-id",
     "mcp-protocol-version", "mcp-method", "mcp-name", "last-event-id"}
)
