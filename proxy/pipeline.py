"""The Stage protocol, the shared dependencies stages are built with, and the chain that runs them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from proxy.context import CallContext
from proxy.errors import ProxyError, error_reply
from proxy.reply import Reply
from proxy.telemetry.setup import Telemetry

if TYPE_CHECKING:
    from proxy.approval.book import ApprovalBook
    from proxy.catalog import ToolCatalog
    from proxy.config import Config
    from proxy.stages.cache import CacheStage
    from proxy.telemetry.metrics import SidecarMetrics
    from proxy.upstream import Upstream

Handler = Callable[[CallContext], Awaitable[Reply]]
ReadinessCheck = Callable[[], Awaitable[tuple[bool, str]]]


@runtime_checkable
class Stage(Protocol):
    """One step of the pipeline. It may derive a context, refuse by raising ProxyError, or adjust the reply."""

    name: str

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply: ...


@runtime_checkable
class Lifecycle(Protocol):
    """Stages holding long-lived resources implement start/close; the app runs them in its cleanup context."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class Deps:
    """What stages are built with: shared resources, never globals."""

    config: Config
    upstream: Upstream
    catalog: ToolCatalog
    approvals: ApprovalBook
    clock: Callable[[], float] = time.monotonic
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    cache: CacheStage | None = None  # set by the cache stage when enabled; the admin listener purges through it
    telemetry: Telemetry = field(default_factory=Telemetry.disabled)  # tracer, meter, /metrics reader

    @property
    def metrics(self) -> SidecarMetrics:
        """Always usable (no-op when telemetry is off): `deps.metrics.count("policy_reload_failures")`."""
        return self.telemetry.metrics


def build_chain(stages: Sequence[Stage], terminal: Handler) -> Handler:
    """Compose the stages once, outermost first, so each request pays only the calls themselves."""
    handler = _bind(None, terminal)
    for stage in reversed(stages):
        handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage | None, call_next: Handler) -> Handler:
    """Wrap one step so a ProxyError it raises becomes a Reply right there; outer stages see a reply."""
    if stage is None:

        async def run_terminal(ctx: CallContext) -> Reply:
            try:
                return await call_next(ctx)
            except ProxyError as error:
                return error_reply(error, ctx)

        return run_terminal

    async def run(ctx: CallContext) -> Reply:
        try:
            return await stage(ctx, call_next)
        except ProxyError as error:
            return error_reply(error, ctx)

    return run
