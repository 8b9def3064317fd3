"""Audit stage: one structured event per message, written once the reply is complete.

It fails open (a full disk must not stop MCP traffic) and counts what it could not write.
"""

from __future__ import annotations

import asyncio

import structlog
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext

from proxy.audit import AuditLog
from proxy.config import AuditConfig
from proxy.context import CallContext
from proxy.errors import ProxyError
from proxy.pipeline import Deps, Handler
from proxy.reply import Reply
from proxy.telemetry.metrics import SidecarMetrics

log = structlog.get_logger("proxy.audit")


class AuditStage:
    name = "audit"

    def __init__(self, config: AuditConfig, metrics: SidecarMetrics) -> None:
        self.log = AuditLog(config, on_write_failure=self._write_failed)
        self.metrics = metrics

    @classmethod
    def from_config(cls, config: AuditConfig, deps: Deps) -> AuditStage | None:
        return cls(config, deps.metrics) if config.enabled else None

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        span = trace.get_current_span().get_span_context()  # the tracing stage's SERVER span, if any
        try:
            reply = await call_next(ctx)
        except asyncio.CancelledError:  # the client went away before an answer: still one event
            ctx.record.fail("cancelled", "client_disconnected")
            self._write(ctx, None, span)
            raise
        except Exception:  # a bug further in: still one event, then let the transport answer 500
            ctx.record.fail("rejected", "internal_error", "internal proxy error")
            ctx.record.http_status = 500
            self._write(ctx, None, span)
            raise
        reply.on_done(lambda done: self._write(ctx, done, span))
        return reply

    def refused(self, ctx: CallContext, error: ProxyError) -> None:
        """A refusal outside the chain (a legacy GET /sse without a valid token): still one event."""
        ctx.record.fail(error.outcome, error.error_type, error.message)
        ctx.record.http_status = error.http_status
        self._write(ctx, None, INVALID_SPAN_CONTEXT)

    def _write(self, ctx: CallContext, reply: Reply | None, span: SpanContext) -> None:
        try:
            self.log.record(ctx, reply, span)
        except Exception as exc:
            self.metrics.count("audit_failures")
            log.warning("audit.write_failed", error=exc.__class__.__name__, decision_id=ctx.record.decision_id)

    def _write_failed(self, error: Exception, events: int) -> None:
        self.metrics.count("audit_failures", events)
        log.warning("audit.write_failed", error=error.__class__.__name__, events=events)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.log.close()
