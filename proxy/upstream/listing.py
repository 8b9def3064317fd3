"""The sidecar's own listing requests to its upstream, in either era, through the configured Upstream.

One code path for every reader of the upstream's definitions: the catalog (tools, for policy and the cache) and
`tools lock` / `tools diff` / `scan` (server info, tools, prompts, resource templates). A 2026-07-28 upstream is
asked directly (`server/discover`, then the lists); one that does not speak it gets the 2025 handshake
(initialize, the lists, the session ended).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy import mcp
from proxy.context import CallContext

if TYPE_CHECKING:
    from proxy.upstream import Upstream

MAX_PAGES = 50
LEGACY_VERSION = "2025-11-25"
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"
# What each list method returns under, the capability that offers it, and the Snapshot kind it feeds.
LISTS = {
    "tools": ("tools/list", "tools", "tools"),
    "prompts": ("prompts/list", "prompts", "prompts"),
    "resource_templates": ("resources/templates/list", "resourceTemplates", "resources"),
}


class ListingError(Exception):
    """The upstream could not be listed: unreachable, or it answered a list request with an error."""


@dataclass(frozen=True, slots=True)
class Listing:
    server: dict[str, Any]  # serverInfo: name, version, ...
    era: mcp.Era
    definitions: dict[str, list[dict[str, Any]]]  # tools, prompts, resource_templates


class Session:
    """Requests in one era: modern ones each carry the 2026-07-28 envelope, legacy ones the session's headers."""

    def __init__(self, upstream: Upstream, version: str, headers: dict[str, str]) -> None:
        self.upstream = upstream
        self.version = version
        self.headers = headers
        self.server: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        self._ids = 0

    @property
    def modern(self) -> bool:
        return mcp.is_modern_version(self.version)

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The result of one request, or None when the upstream answered with an error or nothing usable."""
        self._ids += 1
        request_id = f"sidecar-{self._ids}"
        params = dict(params or {})
        headers = dict(self.headers)
        if self.modern:
            params["_meta"] = {mcp.META_PROTOCOL_VERSION: self.version,
                               "io.modelcontextprotocol/clientCapabilities": {}}
            headers[mcp.HEADER_METHOD] = method
        reply = await self.upstream.send(_context(method, request_id, params, headers, self.version))
        session_id = {k.lower(): v for k, v in reply.headers.items()}.get(mcp.HEADER_SESSION_ID)
        message = await reply.read_final(request_id)
        if session_id and method == "initialize":
            self.headers[mcp.HEADER_SESSION_ID] = session_id
        if reply.status != 200 or message is None or not isinstance(message.get("result"), dict):
            return None
        return message["result"]

    async def notify(self, method: str | None, kind: mcp.Kind = mcp.Kind.NOTIFICATION) -> None:
        reply = await self.upstream.send(_context(method, None, {}, dict(self.headers), self.version, kind))
        await reply.read_final(None)

    async def list_all(self, method: str, field: str) -> list[dict[str, Any]] | None:
        """Every page of a list method, or None when its first page is refused."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for page in range(MAX_PAGES):
            result = await self.request(method, {"cursor": cursor} if cursor else {})
            if result is None:
                return None if page == 0 else items
            items.extend(item for item in result.get(field, []) if isinstance(item, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return items


def modern_session(upstream: Upstream) -> Session:
    return Session(upstream, mcp.MODERN_VERSION, {mcp.HEADER_PROTOCOL_VERSION: mcp.MODERN_VERSION})


@contextlib.asynccontextmanager
async def legacy_session(upstream: Upstream) -> AsyncIterator[Session | None]:
    """The 2025 handshake; yields None when the upstream refuses it. The session is ended on exit."""
    session = Session(upstream, LEGACY_VERSION, {})
    init = await session.request("initialize", {"protocolVersion": LEGACY_VERSION, "capabilities": {},
                                                "clientInfo": {"name": "mcp-sidecar", "version": "1"}})
    if init is None:
        yield None
        return
    session.version = str(init.get("protocolVersion") or LEGACY_VERSION)
    session.headers[mcp.HEADER_PROTOCOL_VERSION] = session.version
    session.server = init.get("serverInfo") if isinstance(init.get("serverInfo"), dict) else {}
    session.capabilities = init.get("capabilities") if isinstance(init.get("capabilities"), dict) else {}
    try:
        await session.notify("notifications/initialized")
        yield session
    finally:
        if mcp.HEADER_SESSION_ID in session.headers:
            await session.notify(None, mcp.Kind.SESSION_END)


async def list_tools(upstream: Upstream) -> list[dict[str, Any]] | None:
    """The upstream's tools (2026-07-28 first, the 2025 handshake as fallback); None when it refuses both.
    Raises ProxyError when it cannot be reached."""
    tools = await modern_session(upstream).list_all("tools/list", "tools")
    if tools is not None:
        return tools
    async with legacy_session(upstream) as session:
        return None if session is None else await session.list_all("tools/list", "tools")


async def list_everything(upstream: Upstream) -> Listing:
    """Server info, tools, prompts and resource templates; raises ListingError (or ProxyError when unreachable)."""
    session = modern_session(upstream)
    discovered = await session.request("server/discover")
    if discovered is not None:
        meta = discovered.get("_meta") if isinstance(discovered.get("_meta"), dict) else {}
        session.server = meta.get(SERVER_INFO_META) if isinstance(meta.get(SERVER_INFO_META), dict) else {}
        session.capabilities = discovered.get("capabilities") or {}
        return Listing(session.server, mcp.Era.MODERN, await _lists(session))
    async with legacy_session(upstream) as legacy:
        if legacy is None:
            raise ListingError("the upstream refused both server/discover (2026-07-28) and initialize (2025)")
        return Listing(legacy.server, mcp.Era.LEGACY, await _lists(legacy))


async def _lists(session: Session) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for kind, (method, field, capability) in LISTS.items():
        if capability not in session.capabilities:
            found[kind] = []
            continue
        items = await session.list_all(method, field)
        if items is None:
            raise ListingError(f"the upstream answered {method} with an error")
        found[kind] = items
    return found


def _context(method: str | None, request_id: str | None, params: dict[str, Any], headers: dict[str, str],
             version: str, kind: mcp.Kind | None = None) -> CallContext:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params} if method else {}
    if request_id is not None:
        message["id"] = request_id
    base = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    return CallContext(
        kind=kind or (mcp.Kind.REQUEST if request_id is not None else mcp.Kind.NOTIFICATION),
        message=message, body=None, method=method, request_id=request_id, protocol_version=version,
        era=mcp.era_of(version), target=None, arguments=None, session_id=headers.get(mcp.HEADER_SESSION_ID),
        headers={**base, **headers}, client_address=None,
    )
