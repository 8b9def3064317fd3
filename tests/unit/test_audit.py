"""The audit event: its fields, trace ids, no arguments by default, redactions, and the file sink."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import structlog
from opentelemetry.trace import SpanContext, TraceFlags

from proxy.audit import REDACTED, AuditLog, audit_event, redact
from proxy.config import AuditConfig
from proxy.context import Principal
from proxy.reply import Reply
from proxy.runtime.logs import configure_logging
from tests.kit import make_ctx

SPAN = SpanContext(trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7, is_remote=False,
                   trace_flags=TraceFlags(1))


def decided_ctx():
    ctx = make_ctx(target="transfer", arguments={"to": "bob", "auth": {"pin": "1234"}},
                   principal=Principal(subject="alice"))
    record = ctx.record
    record.policy_decision, record.policy_reasons, record.policy_revision = "allow", ("ok",), "rev-3"
    record.obligations = {"cache": {"scope": "none"}}
    record.rate_limit = {"bucket": "user", "remaining": 4}
    record.cache_status, record.upstream_status = "bypass", 200
    record.redact = ("auth.pin",)
    return ctx


def test_event_has_the_decision_fields_and_no_arguments_by_default() -> None:
    event = audit_event(decided_ctx(), Reply.json({"jsonrpc": "2.0", "id": 1, "result": {}}), False, SPAN)
    assert event["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event["span_id"] == "00f067aa0ba902b7"
    assert (event["principal"], event["method"], event["tool"]) == ("alice", "tools/call", "transfer")
    assert (event["decision"], event["reasons"], event["policy_revision"]) == ("allow", ["ok"], "rev-3")
    assert event["obligations"] == {"cache": {"scope": "none"}}
    assert (event["cache"], event["rate_limit"], event["upstream_status"]) == ("bypass", {"bucket": "user",
                                                                                          "remaining": 4}, 200)
    assert event["latency_ms"] >= 0 and event["decision_id"]
    assert "arguments" not in event


def test_arguments_when_enabled_carry_the_policy_redactions() -> None:
    event = audit_event(decided_ctx(), Reply.json({}), True, None)
    assert event["arguments"] == {"to": "bob", "auth": {"pin": REDACTED}}
    assert event["trace_id"] is None  # no tracing: no ids, never invalid zeros
    assert redact({"a": 1}, ("missing.path", "a.b")) == {"a": 1}


def test_file_sink_writes_one_json_line_per_event_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditConfig(sink="file", path=str(path)))
    log.record(decided_ctx(), Reply.json({}), SPAN)
    log.record(make_ctx("tools/list", target=None), Reply.json({}))
    lines = path.read_bytes().splitlines()  # readable before close: every event is flushed when written
    log.close()
    events = [orjson.loads(line) for line in lines]
    assert [event["method"] for event in events] == ["tools/call", "tools/list"]
    assert events[0]["event"] == "mcp.audit" and "ts" in events[0]
    assert b"1234" not in path.read_bytes()


def test_events_are_written_whatever_the_log_level(tmp_path: Path) -> None:
    """The audit trail is not a log: `logging.level: warning` (structlog filtering info away) must not drop it."""
    saved = structlog.get_config()
    configure_logging("error")
    try:
        path = tmp_path / "audit.jsonl"
        log = AuditLog(AuditConfig(sink="file", path=str(path)))
        log.record(decided_ctx(), Reply.json({}))
        log.close()
    finally:
        structlog.configure(**saved)
    assert [orjson.loads(line)["method"] for line in path.read_bytes().splitlines()] == ["tools/call"]


async def test_events_of_one_loop_pass_go_out_together_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditConfig(sink="file", path=str(path)))
    log.record(decided_ctx(), Reply.json({}), SPAN)
    log.record(make_ctx("tools/list", target=None), Reply.json({}))
    assert path.read_bytes() == b""  # still this pass
    await asyncio.sleep(0)
    assert [orjson.loads(line)["method"] for line in path.read_bytes().splitlines()] == ["tools/call", "tools/list"]
    log.record(make_ctx("prompts/list", target=None), Reply.json({}))
    log.close()  # what the last pass recorded is written on close
    assert orjson.loads(path.read_bytes().splitlines()[-1])["method"] == "prompts/list"


async def test_a_failed_write_is_reported_with_the_events_it_lost() -> None:
    failures: list[tuple[str, int]] = []
    log = AuditLog(AuditConfig(sink="file", path="/dev/full"),
                   on_write_failure=lambda error, lost: failures.append((error.__class__.__name__, lost)))
    log.record(decided_ctx(), Reply.json({}))
    log.record(make_ctx("tools/list", target=None), Reply.json({}))
    await asyncio.sleep(0)
    log.close()
    assert failures == [("OSError", 2)]
