"""Upstreams: where the pipeline's terminal handler sends a message. One per sidecar, built from config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from proxy.config import Config, HttpUpstreamConfig, SseUpstreamConfig, StdioUpstreamConfig, UpstreamBase
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


def upstream_classes() -> dict[type[UpstreamBase], Callable[[Any], Upstream]]:
    """One entry per kind of upstream config (proxy/config/upstream.py). Imported on first use: the kinds' own
    imports (the connection pool) come back to this package."""
    from proxy.upstream.http import HttpUpstream
    from proxy.upstream.sse import SseUpstream
    from proxy.upstream.stdio import StdioUpstream

    return {HttpUpstreamConfig: HttpUpstream, StdioUpstreamConfig: StdioUpstream, SseUpstreamConfig: SseUpstream}


def create_upstream(config: Config) -> Upstream:
    return upstream_classes()[type(config.upstream)](config.upstream)
