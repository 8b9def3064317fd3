"""The Stage protocol, the chain that runs the stages, and the contract of the way back.

The way in: a stage is called with the CallContext and `call_next`. It may derive a new context
(`ctx.evolve(...)`) for the stages after it, refuse by raising a ProxyError (the chain turns it into a Reply right
there, so the stages outside it see a reply, never an exception), or call `call_next` and look at the Reply.

The way back: a stage never reads or writes the reply's body or events itself (a streamed reply must stay
streamed). It registers hooks on the Reply it got, and the transport's Relay (proxy/transport/relay.py), the one
return path of every transport, runs them:

- **event observers** (`reply.observe_events`) see every SSE event of a streamed reply, server notifications and
  requests included, before the client does. Read-only; they run on the client's critical path, so they must be
  cheap (the cache bumps a generation on `list_changed`, nothing more).
- **result hooks** (`reply.add_result_hook`) run once on the request's final JSON-RPC response, JSON or SSE
  alike, innermost stage first (the order of the return path). A hook may return a replacement message (policy
  filters a list) or None to leave it; later hooks see the replacement. They run before the final response is
  written, so they are on the critical path too. They never run for notifications, GET streams or DELETE.
- **done callbacks** (`reply.on_done`) run once when the reply is over: after a whole answer was written, after a
  stream's end, after the client went away, or when writing failed. They receive the Reply with what the Relay
  recorded (`message`: the final response as sent; `stream_error`: why a stream broke before it). They may not
  change what the client gets (it is gone); they are for audit events, the ends of spans, metrics, releasing
  single flights. They run off the client's critical path, in registration order, innermost stage first.

Only the Relay sets the reply's outcome fields (`message` once relayed, `stream_error`, `final_relayed`); the
upstream sets what it produced (`status`, `headers`, `body` or `events`, `stream_buffered`, `release`).
"""

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
