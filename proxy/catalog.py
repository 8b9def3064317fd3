"""The sidecar's own, trusted view of the upstream's tools (never the caller's word for it).

Policy reads tool annotations and definition hashes from here; the cache asks it whether a tool is read-only.
Fetched with the sidecar's own tools/list (proxy/upstream/listing.py: 2026-07-28 first, the legacy handshake as
fallback), kept for a TTL, dropped on `notifications/tools/list_changed`. The definition hash is the one a tools lock
pins (proxy/tools/pinning.py), so a policy can compare a live tool with a reviewed one.
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

from proxy.errors import ProxyError
from proxy.upstream.listing import list_tools

if TYPE_CHECKING:
    from proxy.net.sse_codec import SseEvent
    from proxy.reply import Reply
    from proxy.upstream import Upstream

log = structlog.get_logger("proxy.catalog")

# MCP defaults for absent annotation fields: an unannotated tool counts as destructive and open-world.
ANNOTATION_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}
LIST_CHANGED = "notifications/tools/list_changed"
HASH_PREFIX = "sha256:"
# What a definition's hash covers, by kind: the key naming an entry, then the fields a model reads or a policy
# trusts. Other fields (`_meta`, icons) may change without changing the hash.
PINNED_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tools": ("name", ("name", "title", "description", "inputSchema", "outputSchema", "annotations")),
    "prompts": ("name", ("name", "title", "description", "arguments")),
    "resource_templates": ("uriTemplate", ("uriTemplate", "name", "title", "description", "mimeType", "annotations")),
}


def canonical(kind: str, definition: dict[str, Any]) -> dict[str, Any]:
    """The fields of `definition` its hash covers (absent ones stay absent)."""
    return {key: definition[key] for key in PINNED_FIELDS[kind][1] if key in definition}


def definition_hash(kind: str, definition: dict[str, Any]) -> str:
    """SHA-256 of the canonical form's JSON with sorted keys: what a tools lock pins and policy reads."""
    text = orjson.dumps(canonical(kind, definition), option=orjson.OPT_SORT_KEYS)
    return HASH_PREFIX + hashlib.sha256(text).hexdigest()


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
        return cls(name=definition["name"], definition=definition, annotations=annotations,
                   hash=definition_hash("tools", definition))


class ToolCatalog:
    def __init__(self, upstream: Upstream, ttl_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.upstream = upstream
        self.ttl = ttl_seconds
        self.clock = clock
        self._tools: dict[str, ToolInfo] | None = None
        self._fetched_at = 0.0
        self._refresh: asyncio.Task[dict[str, ToolInfo] | None] | None = None
        self._on_invalidate: list[Callable[[], None]] = []

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
        for callback in self._on_invalidate:
            callback()

    async def reread(self) -> dict[str, ToolInfo] | None:
        """A fresh view now, whatever the TTL (without telling the on_invalidate callbacks)."""
        self._tools = None
        return await self.all()

    def on_invalidate(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever the view is dropped (a list_changed seen): the pinning stage re-reads then."""
        self._on_invalidate.append(callback)

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
            definitions = await list_tools(self.upstream)
        except ProxyError as error:
            log.warning("catalog.unavailable", reason=error.message)
            return self._tools
        if definitions is None:
            log.warning("catalog.unavailable", reason="upstream answered tools/list with an error")
            return self._tools
        self._tools = {d["name"]: ToolInfo.from_definition(d) for d in definitions if isinstance(d.get("name"), str)}
        self._fetched_at = self.clock()
        return self._tools
