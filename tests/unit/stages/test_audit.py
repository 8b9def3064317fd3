"""The audit stage: one event per message once its reply is done, also when the call fails or is cancelled, with
the current span's ids; arguments only when asked for."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from proxy.audit import AuditTrail
from proxy.config import AuditConfig
from proxy.context import CallContext
from proxy.errors import PolicyDeniedError
from proxy.pipeline import build_chain
from proxy.reply import Reply
from proxy.stages.audit import AuditStage
from tests.kit import make_ctx


class Trail:
    """An AuditTrail writing to a file in tmp_path; `events()` reads back what reached it."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.path = tmp_path / "audit.jsonl"
        self.counts: list[tuple[str, int]] = []
        self.trail = AuditTrail(AuditConfig(sink="file", path=str(self.path), **settings),
                                lambda name, amount: self.counts.append((name, amount)))

    def events(self) -> list[dict[str, Any]]:
        self.trail.log.flush()
        return [orjson.loads(line) for line in self.path.read_bytes().splitlines()]


async def answer(ctx: CallContext) -> Reply:
    return Reply.json({"jsonrpc": "2.0", "id": ctx.request_id, "result": {"content": []}})


def test_no_stage_without_an_audit_trail() -> None:
    deps: Any = type("DepsLike", (), {"audit": None})()
    assert AuditStage.from_config(AuditConfig(enabled=False), deps) is None
    assert AuditTrail.from_config(AuditConfig(enabled=False), lambda name, amount: None) is None


async def test_one_event_once_the_reply_is_done_without_arguments(tmp_path: Path) -> None:
    trail = Trail(tmp_path)
    ctx = make_ctx(target="add", arguments={"password": "hunter2"}, request_id=5)
    reply = await AuditStage(trail.trail)(ctx, answer)
    assert trail.events() == []  # not before the reply was written
    await reply.finish()
    [event] = trail.events()
    assert (event["event"], event["method"], event["tool"], event["request_id"]) == ("mcp.audit", "tools/call",
                                                                                     "add", 5)
    assert (event["outcome"], event["http_status"], event["decision_id"]) == ("allowed", 200, ctx.record.decision_id)
    assert "hunter2" not in trail.path.read_text() and event["trace_id"] is None


async def test_arguments_when_asked_for_are_redacted(tmp_path: Path) -> None:
    trail = Trail(tmp_path, log_arguments=True)
    ctx = make_ctx(arguments={"user": "bob", "password": "hunter2"})
    ctx.record.redact = ("password",)
    await (await AuditStage(trail.trail)(ctx, answer)).finish()
    [event] = trail.events()
    assert event["arguments"] == {"user": "bob", "password": "[redacted]"}


async def test_a_refusal_inside_is_audited_with_its_outcome(tmp_path: Path) -> None:
    trail = Trail(tmp_path)

    async def policy(ctx: CallContext, call_next: Any) -> Reply:
        ctx.record.policy_decision, ctx.record.policy_reasons = "deny", ("no",)
        raise PolicyDeniedError("Denied by policy: no")

    chain = build_chain([AuditStage(trail.trail), policy], answer)
    await (await chain(make_ctx("prompts/get", target="greet"))).finish()
    [event] = trail.events()
    assert (event["outcome"], event["error_type"], event["decision"], event["reasons"]) == (
        "denied", "policy_denied", "deny", ["no"])


async def test_a_crash_inside_is_one_event_with_status_500(tmp_path: Path) -> None:
    trail = Trail(tmp_path)

    async def crash(ctx: CallContext) -> Reply:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await AuditStage(trail.trail)(make_ctx(), crash)
    [event] = trail.events()
    assert (event["outcome"], event["error_type"], event["http_status"]) == ("rejected", "internal_error", 500)


async def test_a_client_that_left_is_one_cancelled_event(tmp_path: Path) -> None:
    trail = Trail(tmp_path)

    async def hang(ctx: CallContext) -> Reply:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await AuditStage(trail.trail)(make_ctx(), hang)
    [event] = trail.events()
    assert (event["outcome"], event["error_type"]) == ("cancelled", "client_disconnected")


async def test_the_current_span_ties_the_event_to_the_trace(tmp_path: Path) -> None:
    trail = Trail(tmp_path)
    context = SpanContext(trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7, is_remote=False,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NonRecordingSpan(context)):
        reply = await AuditStage(trail.trail)(make_ctx(), answer)
    await reply.finish()
    [event] = trail.events()
    assert (event["trace_id"], event["span_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


async def test_a_failing_sink_is_counted_and_the_reply_still_goes_out(tmp_path: Path) -> None:
    trail = Trail(tmp_path)
    trail.trail.log._file.close()  # the disk went away
    reply = await AuditStage(trail.trail)(make_ctx(), answer)
    await reply.finish()
    trail.trail.log.flush()
    assert reply.status == 200 and trail.counts == [("audit_failures", 1)]
