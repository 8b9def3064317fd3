"""Audit stage: one structured event per message, written once the reply is complete (proxy/audit.py writes it)."""

from __future__ import annotations

import asyncio

from opentelemetry import trace

from proxy.audit import AuditTrail
from proxy.config import AuditConfig
from proxy.context import CallContext
from proxy.pipeline import Handler
from proxy.reply import Reply
from proxy.stages.deps import Deps


class AuditStage:
    name = "audit"

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    @classmethod
    def from_config(cls, config: AuditConfig, deps: Deps) -> AuditStage | None:
        return cls(deps.audit) if deps.audit is not None else None

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        span = trace.get_current_span().get_span_context()  # the tracing stage's SERVER span, if any
        try:
            reply = await call_next(ctx)
        except asyncio.CancelledError:  # the client went away before an answer: still one event
            ctx.record.fail("cancelled", "client_disconnected")
            self.trail.write(ctx, None, span)
            raise
        except Exception:  # a bug further in: still one event, then let the transport answer 500
            ctx.record.fail("rejected", "internal_error", "internal proxy error")
            ctx.record.http_status = 500
            self.trail.write(ctx, None, span)
            raise
        reply.on_done(lambda done: self.trail.write(ctx, done, span))
        return reply
