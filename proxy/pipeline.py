"""The Stage protocol, the readiness checks, and the chain that runs the stages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from proxy.context import CallContext
from proxy.errors import ProxyError, error_reply
from proxy.reply import Reply

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


class Readiness:
    """The named checks behind `/readyz`, added by whatever holds a resource worth asking about (the upstream, the
    policy engine, the JWKS keys, Redis) while the sidecar is built; the admin app asks them all."""

    def __init__(self) -> None:
        self._checks: dict[str, ReadinessCheck] = {}

    def add(self, name: str, check: ReadinessCheck) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} added twice")
        self._checks[name] = check

    def __iter__(self) -> Iterator[tuple[str, ReadinessCheck]]:
        return iter(list(self._checks.items()))


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
