"""The Stage protocol and the chain that runs stages in order, ending at the upstream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from proxy.context import CallContext
from proxy.reply import Reply

Handler = Callable[[CallContext], Awaitable[Reply]]


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


def build_chain(stages: Sequence[Stage], terminal: Handler) -> Handler:
    """Compose the stages once, outermost first, so each request pays only the calls themselves."""
    handler = terminal
    for stage in reversed(stages):
        handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage, call_next: Handler) -> Handler:
    async def run(ctx: CallContext) -> Reply:
        return await stage(ctx, call_next)

    return run
