"""The sidecar's own, trusted view of the upstream's tools (never the caller's word for it).

Policy reads tool annotations and definition hashes from here; the cache asks it whether a tool is read-only.
Fetched with the sidecar's own tools/list (2026-07-28 first, the legacy handshake as fallback), kept for a TTL,
dropped on `notifications/tools/list_changed`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from proxy import mcp
from proxy.context import CallContext
from proxy.errors import ProxyError

if TYPE_CHECKING:
    from proxy.net.sse_codec import SseEvent
    from proxy.reply import Reply
    from proxy.upstream import Upstream

log = structlog.get_logger("proxy.catalog")

# MCP defaults for absent annotation fields: an unannotated tool counts as destructive and open-world.
ANNOTATION_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}
MAX_PAGES = 50
LIST_CHANGED = "notifications/tools/list_changed"


@dataclass(frozen=True, slots=True)
class ToolInfo:
    name: str
    definition: dict[str, Any]
    annotations: dict[str, Any]
    hash: str

    @classmethod
    def from_definition(cls, definition: dict[str, Any]) -> ToolInfo:
        given = definition.get("annotations")
        annotations = {**ANNOTATION_DEFAULTS, **(given if isinstance(given, dict) else {})}
        digest = hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return cls(name=definition["name"], definition=definition, annotations=annotations, hash=digest)


class ToolCatalog:
    def __init__(self, upstream: Upstream, ttl_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.upstream = upstream
        self.ttl = ttl_seconds
        self.clock = clock
        self._tools: dict[str, ToolInfo] | None = None
        self._fetched_at = 0.0
        self._refresh: asyncio.Task[dict[str, ToolInfo] | None] | None = None

    async def get(self, name: str) -> ToolInfo | None:
        tools = await self.all()
        return tools.get(name) if tools is not None else None

    async def all(self) -> dict[str, ToolInfo] | None:
        """All tools, or None when the upstream cannot tell us right now (callers decide what that means)."""
        if self._tools is not None and self.clock() - self._fetched_at < self.ttl:
            return self._tools
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._fetch())  # one fetch, however many callers wait
        return await asyncio.shield(self._refresh)

    def invalidate(self) -> None:
        self._tools = None

    def watch(self, reply: Reply) -> Reply:
        """Drop the view when the upstream announces a changed tool list, on any stream it sends. Called on every
        upstream reply, so it holds whichever stages are on (policy reads annotations from here)."""
        if reply.is_stream:
            reply.observe_events(self._observe)
        return reply

    def _observe(self, event: SseEvent) -> None:
        if event.data and LIST_CHANGED in event.data:
            self.invalidate()

    async def _fetch(self) -> dict[str, ToolInfo] | None:
        try:
            definitions = await self._list_modern()
            if definitions is None:
                definitions = await self._list_legacy()
        except ProxyError as error:
            log.warning("catalog.unavailable", reason=error.message)
            return self._tools
        if definitions is None:
            log.warning("catalog.unavailable", reason="upstream answered tools/list with an error")
            return self._tools
        self._tools = {d["name"]: ToolInfo.from_definition(d) for d in definitions if isinstance(d.get("name"), str)}
        self._fetched_at = self.clock()
        return self._tools

    async def _list_modern(self) -> list[dict[str, Any]] | None:
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for page in range(MAX_PAGES):
            params: dict[str, Any] = {"_meta": {mcp.META_PROTOCOL_VERSION: mcp.MODERN_VERSION,
                                                "io.modelcontextprotocol/clientCapabilities": {}}}
            if cursor:
                params["cursor"] = cursor
            headers = {mcp.HEADER_PROTOCOL_VERSION: mcp.MODERN_VERSION, mcp.HEADER_METHOD: "tools/list"}
            result = await self._request("tools/list", params, headers, request_id=f"catalog-{page}")
            if result is None:
                return None if page == 0 else tools
            tools.extend(t for t in result.get("tools", []) if isinstance(t, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return tools

    async def _list_legacy(self) -> list[dict[str, Any]] | None:
        """The 2025 handshake for upstreams that do not speak 2026-07-28: initialize, list, end the session."""
        init_params = {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "mcp-sidecar-catalog", "version": "1"}}
        session: dict[str, str] = {}
        init = await self._request("initialize", init_params, session, request_id="catalog-init", capture=session)
        if init is None:
            return None
        version = init.get("protocolVersion", "2025-11-25")
        headers = {**session, mcp.HEADER_PROTOCOL_VERSION: version}
        try:
            await self._send(_context("notifications/initialized", None, {}, headers, version))
            listed = await self._request("tools/list", {}, headers, request_id="catalog-list", version=version)
        finally:
            if mcp.HEADER_SESSION_ID in session:
                await self._send(_context(None, None, {}, headers, version, kind=mcp.Kind.SESSION_END))
        return [t for t in listed.get("tools", []) if isinstance(t, dict)] if listed else None

    async def _request(self, method: str, params: dict[str, Any], headers: dict[str, str], *, request_id: str,
                       version: str = mcp.MODERN_VERSION, capture: dict[str, str] | None = None) -> dict | None:
        reply = await self.upstream.send(_context(method, request_id, params, headers, version))
        if capture is not None:
            session_id = {k.lower(): v for k, v in reply.headers.items()}.get(mcp.HEADER_SESSION_ID)
            if session_id:
                capture[mcp.HEADER_SESSION_ID] = session_id
        message = await reply.read_final(request_id)
        if reply.status != 200 or message is None or not isinstance(message.get("result"), dict):
            return None
        return message["result"]

    async def _send(self, ctx: CallContext) -> None:
        reply = await self.upstream.send(ctx)
        await reply.read_final(None)


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
