"""Tracing stage (outermost): a SERVER span and the call metrics for every client message.

The span is current while the inner stages and the upstream call run, so the upstream CLIENT span (made in the
terminal, see app.forward_to) and the audit event's trace/span ids hang off it. It ends when the reply was
written (also for streams), carrying the sidecar's decisions from ctx.record.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from proxy.audit import redact
from proxy.config import TelemetryConfig
from proxy.context import CallContext
from proxy.pipeline import Handler
from proxy.reply import Reply
from proxy.stages.deps import Deps
from proxy.telemetry import semconv
from proxy.telemetry.setup import TRACED_KINDS, Telemetry, parent_context
from proxy.telemetry.spans import RecordedSpan

log = structlog.get_logger("proxy.tracing")



class TracingStage:
    name = "tracing"

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.config = telemetry.config
        self.metrics = telemetry.metrics
        assert telemetry.spans is not None  # from_config builds the stage only when tracing is on
        self.spans = telemetry.spans

    @classmethod
    def from_config(cls, config: TelemetryConfig, deps: Deps) -> TracingStage | None:
        return cls(deps.telemetry) if config.enabled and deps.telemetry.enabled else None

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        if ctx.kind not in TRACED_KINDS:
            return await call_next(ctx)
        parent, links = parent_context(ctx)
        span = self.spans.start(semconv.span_name(ctx, self.config.resource_uri_in_span_name), SpanKind.SERVER,
                                semconv.server_attributes(ctx), parent, links)
        self.metrics.started(ctx)
        # Current while the inner stages run: the CLIENT span's parent, the audit event's ids, the caller's baggage.
        token = otel_context.attach(span.in_context(parent))
        try:
            reply = await call_next(ctx)
        except BaseException as exc:  # a bug in a stage or a cancelled request: the span still ends
            error_type = ctx.record.error_type or exc.__class__.__qualname__
            self._end(ctx, span, error_type, str(exc) or None)
            self.metrics.finished(ctx, error_type, time.monotonic() - ctx.started)
            raise
        finally:
            otel_context.detach(token)
        reply.on_done(lambda done: self._finish(ctx, span, done))
        return reply

    def _finish(self, ctx: CallContext, span: RecordedSpan, reply: Reply) -> None:
        """Fails open: a telemetry bug must not break a reply that was already written, nor leave the call in
        flight in the metrics."""
        error_type = ctx.record.error_type
        try:
            error_type = self._describe(ctx, span, reply)
        except Exception:
            log.exception("tracing.failed", method=ctx.method)
            self.metrics.count("telemetry_failures")
            span.end({})
        self.metrics.finished(ctx, error_type, time.monotonic() - ctx.started)

    def _describe(self, ctx: CallContext, span: RecordedSpan, reply: Reply) -> str | None:
        """End the span with what the reply says; the call's error type, if any."""
        error_type, code, description = semconv.reply_error(ctx.record, reply)
        attributes: dict[str, Any] = {semconv.HTTP_RESPONSE_STATUS_CODE: reply.status}
        if code is not None:
            attributes[semconv.RPC_RESPONSE_STATUS_CODE] = code
        if self.config.record_arguments and ctx.arguments is not None:
            arguments = redact(ctx.arguments, ctx.record.redact)
            attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = orjson.dumps(arguments).decode()
        result = semconv.tool_result(reply) if self.config.record_results else None
        if result is not None:
            attributes[semconv.GEN_AI_TOOL_CALL_RESULT] = orjson.dumps(result).decode()
        self._end(ctx, span, error_type, description, attributes)
        return error_type

    def _end(self, ctx: CallContext, span: RecordedSpan, error_type: str | None, description: str | None,
             attributes: dict[str, Any] | None = None) -> None:
        attributes = {**(attributes or {}), **semconv.decision_attributes(ctx.record)}
        principal = ctx.record.principal or ctx.principal  # set by auth, which runs inside this stage
        if principal.authenticated:
            attributes[semconv.PRINCIPAL] = principal.subject
        if error_type is not None:
            attributes[semconv.ERROR_TYPE] = error_type
        span.end(attributes, description, error=error_type is not None)
