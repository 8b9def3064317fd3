"""Checks on the HTTP envelope and the building of a CallContext from one client message."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from proxy import jsonrpc, mcp
from proxy.config import ServerConfig, parse_host_port
from proxy.context import CallContext
from proxy.errors import (
    BadMessageError,
    HeaderMismatchError,
    OriginRejectedError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from proxy.net.listener import HttpRequest

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def check_origin(request: HttpRequest, server: ServerConfig) -> None:
    """Browsers send Origin; only configured origins and the sidecar's own may call (DNS-rebinding protection)."""
    origin = request.headers.get("Origin")
    if origin is None or "*" in server.allowed_origins or origin in server.allowed_origins:
        return
    if origin in own_origins(server.listen, server.public_url, server.scheme):
        return
    raise OriginRejectedError(f"Origin {origin!r} is not allowed")


@functools.lru_cache(maxsize=16)
def own_origins(listen: str, public_url: str | None, scheme: str = "http") -> frozenset[str]:
    """The sidecar's own origins: a request carrying one is same-origin, never cross-site.

    A rebinding page keeps its attacker's host name in Origin, so it never matches; a wildcard listen
    address (0.0.0.0) names no origin a browser could send.
    """
    host, port = parse_host_port(listen)
    if host in ("0.0.0.0", "::", ""):
        origins = set()
    else:
        origins = {f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"}
    if host in _LOOPBACK:
        origins.add(f"{scheme}://localhost:{port}")
    if public_url:
        parts = urlsplit(public_url)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return frozenset(origins)


def read_body(request: HttpRequest, server: ServerConfig) -> bytes:
    """The POSTed JSON body (the listener has received it whole, or noted that it passed the limit)."""
    if request.body_too_large:
        raise PayloadTooLargeError(f"Request body exceeds {server.max_body_bytes} bytes")
    if request.content_type != "application/json":
        raise UnsupportedMediaTypeError("Content-Type must be application/json")
    return request.body


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The MCP headers worth relaying: never Authorization, Host, Origin, cookies or hop-by-hop ones."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lower = _FORWARDED_NAMES.get(name)
        if lower is None:
            lower = _forwarded_name(name)
        if lower:
            kept[lower] = value
    return kept


# Header name as sent -> its lower-case form when forwarded, "" when not: clients send the same few names on every
# request, and one dict lookup is cheaper than lower() and two tests. Bounded, since names come from clients.
_FORWARDED_NAMES: dict[str, str] = {}
_MAX_REMEMBERED_NAMES = 512


def _forwarded_name(name: str) -> str:
    lower = name.lower()
    forwarded = lower if lower in mcp.FORWARDED_REQUEST_HEADERS or lower.startswith(mcp.HEADER_PARAM_PREFIX) else ""
    if len(_FORWARDED_NAMES) < _MAX_REMEMBERED_NAMES:
        _FORWARDED_NAMES[name] = forwarded
    return forwarded


def message_context(request: HttpRequest, body: bytes) -> CallContext:
    """Parse one POSTed message and describe it. What goes upstream is what was parsed and decided: the client's
    bytes when they are already its canonical form, else the canonical form (duplicate keys resolved as the parser
    resolved them, escapes written out). Messages whose meaning a case-insensitive reader would change, and
    requests without an id, are refused."""
    try:
        message = jsonrpc.parse_message(body)
    except jsonrpc.MessageError as exc:
        raise BadMessageError(exc.code, exc.message) from None
    params = mcp.params_of(message)
    problem = mcp.ambiguous_key(message, params)
    if problem is not None:
        raise BadMessageError(jsonrpc.INVALID_REQUEST, f"Invalid Request: {problem}")
    headers = forwarded_headers(request.headers)
    kind = mcp.message_kind(message)
    version = mcp.protocol_version(message, headers.get(mcp.HEADER_PROTOCOL_VERSION))
    era = mcp.era_of(version)
    return _context(request, kind, message, orjson.dumps(message), headers, version, era, params=params)


def check_mirrored_headers(ctx: CallContext) -> None:
    """2026-07-28 requests mirror method and target in headers; they must agree with the body."""
    if ctx.era is mcp.Era.MODERN and ctx.kind is not mcp.Kind.RESPONSE:
        problem = mcp.header_mismatch(ctx.message, ctx.headers.get(mcp.HEADER_METHOD), ctx.headers.get(mcp.HEADER_NAME))
        if problem is not None:
            raise HeaderMismatchError(problem)


def stream_context(request: HttpRequest, kind: mcp.Kind) -> CallContext:
    """A GET (legacy server-to-client stream) or DELETE (legacy session end): no body, no method."""
    headers = forwarded_headers(request.headers)
    version = headers.get(mcp.HEADER_PROTOCOL_VERSION) or mcp.LEGACY_DEFAULT_VERSION
    return _context(request, kind, {}, None, headers, version, mcp.era_of(version), http_method=request.method)


def _context(request: HttpRequest, kind: mcp.Kind, message: dict[str, Any], body: bytes | None,
             headers: dict[str, str], version: str, era: mcp.Era, http_method: str = "POST",
             params: dict[str, Any] | None = None) -> CallContext:
    method = message.get("method")
    if params is None:
        params = mcp.params_of(message)
    arguments = params.get("arguments") if method in ("tools/call", "prompts/get") else None
    return CallContext(
        kind=kind,
        message=message,
        body=body,
        method=method,
        request_id=message.get("id"),
        protocol_version=version,
        era=era,
        target=mcp.target_of(method, params),
        arguments=arguments if isinstance(arguments, dict) else None,
        session_id=headers.get(mcp.HEADER_SESSION_ID),
        headers=headers,
        client_address=request.remote,
        http_method=http_method,
        credentials=request.headers.get("Authorization"),
    )
