"""Upstreams: where the pipeline's terminal handler sends a message. One per sidecar, built from config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from proxy.config import Config
from proxy.context import CallContext
from proxy.reply import Reply


class Upstream(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, ctx: CallContext) -> Reply:
        """Deliver one client message (or GET stream / DELETE) and return the upstream's reply."""
        ...

    def on_restart(self, callback: Callable[[], None]) -> None:
        """Call `callback` each time the sidecar restarts the upstream process (stdio) or connection (SSE)."""
        ...

    async def readiness(self) -> tuple[bool, str]:
        """Whether the upstream can take calls now, with a short human-readable detail."""
        ...


def create_upstream(config: Config) -> Upstream:
    kind = config.upstream.kind
    if kind == "stdio":
        from proxy.upstream.stdio import StdioUpstream

        return StdioUpstream(config.upstream)
    if kind == "sse":
        from proxy.upstream.sse import SseUpstream

        return SseUpstream(config.upstream)
    from proxy.upstream.http import HttpUpstream

    return HttpUpstream(config.upstream)
