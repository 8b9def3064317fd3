"""Pinning stage: tools whose live definition differs from the reviewed tools lock (or that it lacks) are hidden
from tools/list and their calls refused with a tool result naming the drift (tools.on_drift: block); `approve`
sends the call to an approver with the drift shown, `warn` lets it pass and logs it.

Sits after policy (a caller never learns of a drift in a tool policy hides from them) and before rate limits and
approvals (a refused call costs no tokens; `approve` asks the approval stage). The live definitions come from the
catalog, re-read at start, on `notifications/tools/list_changed` and every `tools.recheck_seconds`; each drift is
announced once: an audit event, the `tool_drifts` metric, a warning, and a line under /readyz.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from opentelemetry.trace import SpanKind

from proxy.audit import AuditTrail
from proxy.catalog import ToolCatalog
from proxy.config.tools import ToolsConfig
from proxy.context import CallContext
from proxy.errors import ToolDriftError
from proxy.pipeline import Handler
from proxy.reply import Reply
from proxy.stages.deps import Deps
from proxy.telemetry import semconv
from proxy.telemetry.setup import Telemetry
from proxy.telemetry.spans import RecordedSpan
from proxy.tools.drift import Drift
from proxy.tools.guard import ToolPins, refusal_text

log = structlog.get_logger("proxy.tools")

RECHECK_SPAN = "mcp_sidecar tools recheck"  # one span per recheck that found new drifts
DRIFT_EVENT = "mcp_sidecar.tool.drift"  # one event on it per drift
UNVERIFIABLE = ("Refused by the sidecar: the upstream's tool definitions cannot be read right now, so this tool "
                "cannot be checked against the reviewed tools lock. Try again shortly.")


class PinningStage:
    name = "tools"

    def __init__(self, pins: ToolPins, catalog: ToolCatalog, recheck_seconds: float, telemetry: Telemetry,
                 audit: AuditTrail | None) -> None:
        self.pins = pins
        self.catalog = catalog
        self.recheck_seconds = recheck_seconds
        self.telemetry = telemetry
        self.audit = audit
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        catalog.on_invalidate(self._changed.set)

    @classmethod
    def from_config(cls, config: ToolsConfig, deps: Deps) -> PinningStage | None:
        if deps.pins is None:
            return None
        return cls(deps.pins, deps.catalog, config.recheck_seconds, deps.telemetry, deps.audit)

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._watch(), name="tools-recheck")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # its CancelledError, not ours

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        if not ctx.is_request:
            return await call_next(ctx)
        if ctx.method == "tools/list":
            reply = await call_next(ctx)
            if self.pins.mode == "block":
                reply.add_result_hook(self._hide_drifted)
            return reply
        if ctx.method == "tools/call" and ctx.target is not None:
            ctx = await self._checked(ctx)
        return await call_next(ctx)

    async def _checked(self, ctx: CallContext) -> CallContext:
        """The call as it may go on, or a ToolDriftError."""
        tools = await self.catalog.all()
        if tools is None:
            if self.pins.mode == "block":
                raise ToolDriftError(UNVERIFIABLE)
            return ctx
        info = tools.get(ctx.target or "")
        drift = self.pins.judge(info.definition) if info is not None else None
        if drift is None:
            return ctx  # pinned and unchanged, or unknown upstream (which answers that itself)
        ctx.record.extra["tool_drift"] = _described(drift)
        if self.pins.blocks(drift):
            raise ToolDriftError(refusal_text(drift), data={"tool_drift": _described(drift)})
        if self.pins.mode == "approve":
            return ctx.evolve(obligations={**ctx.obligations, "require_approval": True})
        log.warning("tools.drift_allowed", tool=drift.key, status=drift.status.value)
        return ctx

    async def _hide_drifted(self, message: dict[str, Any]) -> dict[str, Any] | None:
        result = message.get("result")
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return None
        kept = [tool for tool in tools if isinstance(tool, dict) and not self.pins.blocks(self.pins.judge(tool))]
        if len(kept) == len(tools):
            return None
        self._changed.set()  # the live list moved on: re-read it, so the drift is announced and calls refused
        return {**message, "result": {**result, "tools": kept}}

    async def refresh(self) -> None:
        """Re-read the lock if it changed and the live tools; announce each new drift once."""
        if await asyncio.to_thread(self.pins.reload_if_changed):
            log.info("tools.lock_reloaded", path=str(self.pins.path), tools=len(self.pins.lock.tools))
        tools = await self.catalog.reread()
        if tools is None:
            log.warning("tools.recheck_failed", reason="the upstream's tools/list could not be read")
            return
        fresh = self.pins.observe([info.definition for info in tools.values()])
        spans = self.telemetry.spans
        span = spans.start(RECHECK_SPAN, SpanKind.INTERNAL, {}) if fresh and spans is not None else None
        for drift in fresh:
            self._announce(drift, span)
        if span is not None:
            span.end({semconv.PREFIX + "tools.drifts": len(fresh)})

    def _announce(self, drift: Drift, span: RecordedSpan | None) -> None:
        log.warning("tools.drift", tool=drift.key, status=drift.status.value, summary=drift.summary(),
                    on_drift=self.pins.mode)
        self.telemetry.metrics.count("tool_drifts", status=drift.status.value)
        if span is not None:
            fields = {"status": drift.status.value, "summary": drift.summary(), "on_drift": self.pins.mode,
                      "locked_hash": drift.locked_hash, "live_hash": drift.live_hash}
            span.add_event(DRIFT_EVENT, {semconv.GEN_AI_TOOL_NAME: drift.key, **{
                f"{semconv.PREFIX}tool.drift.{key}": value for key, value in fields.items() if value is not None}})
        if self.audit is not None:
            self.audit.note({"kind": "tool_drift", "time": time.time(), "tool": drift.key,
                             "outcome": drift.status.value, "on_drift": self.pins.mode, **_described(drift)})

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.recheck_seconds)
            self._changed.clear()
            try:
                await self.refresh()
            except Exception:  # a recheck must never end the watch; the next one tries again
                log.exception("tools.recheck_failed")


def _described(drift: Drift) -> dict[str, Any]:
    return {"status": drift.status.value, "summary": drift.summary(), "locked_hash": drift.locked_hash,
            "live_hash": drift.live_hash, "changed_fields": sorted({c.path for c in drift.changes})}
