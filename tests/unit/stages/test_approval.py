"""The approval stage: a call policy marks `require_approval` waits for a decision in the book; JSON clients wait in
silence, SSE clients get a stream that carries the answer once decided."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from proxy.approval.book import ApprovalBook, Decided, Outcome
from proxy.config import ApprovalConfig
from proxy.context import CallContext, Principal
from proxy.errors import ApprovalDeniedError
from proxy.net.sse_codec import SseEvent
from proxy.reply import EVENT_STREAM, Reply
from proxy.stages.approval import ApprovalStage
from proxy.telemetry.setup import Telemetry
from tests.kit import make_config, make_ctx, wait_until

SSE = {"accept": "application/json, text/event-stream"}


class Upstream:
    def __init__(self, reply: Reply | None = None) -> None:
        self.seen: list[CallContext] = []
        self.reply = reply

    async def __call__(self, ctx: CallContext) -> Reply:
        self.seen.append(ctx)
        return self.reply or Reply.json({"jsonrpc": "2.0", "id": ctx.request_id, "result": {"content": [], "n": 1}})


def stage(timeout: float = 5.0, max_pending: int = 10) -> ApprovalStage:
    return ApprovalStage(ApprovalConfig(timeout_seconds=timeout), ApprovalBook(max_pending=max_pending))


def gated(**changes: Any) -> CallContext:
    ctx = make_ctx(target="delete_file", arguments={"path": "/secret/x"}, principal=Principal("alice"),
                   obligations={"require_approval": True}, **changes)
    ctx.record.policy_reasons = ("destructive",)
    return ctx


async def decide_first(book: ApprovalBook, approved: bool, note: str = "") -> dict[str, Any]:
    """Wait (bounded) for the one pending approval, decide it, return what the approver saw."""
    await wait_until(book.pending)
    [pending] = await book.pending()
    assert await book.decide(pending["id"], pending["arguments_hash"], Outcome(approved, note, "ops")) \
        is Decided.DECIDED
    return pending


async def stream_messages(reply: Reply) -> list[dict[str, Any]]:
    assert reply.events is not None
    messages = [orjson.loads(event.data) async for event in reply.events]
    await reply.finish()
    return messages


async def test_calls_without_the_obligation_pass_straight_through() -> None:
    approvals, upstream = stage(), Upstream()
    await approvals(make_ctx(), upstream)
    await approvals(make_ctx(request_id=None, obligations={"require_approval": True}), upstream)  # notification
    await approvals(make_ctx(obligations={"require_approval": False}), upstream)
    assert len(upstream.seen) == 3 and await approvals.book.pending() == []


def test_no_stage_without_a_policy_engine() -> None:
    config = make_config()
    deps: Any = type("DepsLike", (), {"config": config, "approvals": ApprovalBook(), "catalog": None,
                                      "notifier": None, "metrics": Telemetry.disabled().metrics})()
    assert ApprovalStage.from_config(config.approval, deps) is None
    on = make_config(policy__engine="opa", policy__opa_url="http://opa:8181")
    deps.config = on
    built = ApprovalStage.from_config(on.approval, deps)
    assert built is not None and built.book is deps.approvals
    deps.config = make_config(tools__lock_file="tools.lock", tools__on_drift="approve")  # drifted calls ask it
    assert ApprovalStage.from_config(deps.config.approval, deps) is not None
    deps.config = make_config(tools__lock_file="tools.lock", tools__on_drift="block")
    assert ApprovalStage.from_config(deps.config.approval, deps) is None


async def test_an_approved_json_call_goes_on_and_the_approver_saw_redacted_arguments() -> None:
    approvals, upstream = stage(), Upstream()
    ctx = gated()
    ctx.record.redact = ("path",)
    call = asyncio.ensure_future(approvals(ctx, upstream))
    seen = await decide_first(approvals.book, True, "ok")
    reply = await asyncio.wait_for(call, 2)
    assert reply.message is not None and reply.message["result"]["n"] == 1 and len(upstream.seen) == 1
    assert seen == {"id": ctx.record.approval_id, "created": seen["created"], "expires": seen["expires"],
                    "principal": "alice", "issuer": None, "method": "tools/call", "target": "delete_file",
                    "arguments": {"path": "[redacted]"}, "arguments_shown": "redacted",
                    "arguments_hash": seen["arguments_hash"], "annotations": None, "reasons": ["destructive"],
                    "decision_id": ctx.record.decision_id, "policy_revision": None}
    assert ctx.record.extra["approval"] == "approved" and ctx.record.approver == "ops"


async def test_a_refused_json_call_raises_with_the_note_and_never_goes_upstream() -> None:
    approvals, upstream = stage(), Upstream()
    ctx = gated()
    call = asyncio.ensure_future(approvals(ctx, upstream))
    await decide_first(approvals.book, False, "not today")
    with pytest.raises(ApprovalDeniedError) as caught:
        await asyncio.wait_for(call, 2)
    assert caught.value.message == f"Approval {ctx.record.approval_id} was not granted: not today"
    assert caught.value.data == {"approval_id": ctx.record.approval_id}
    assert upstream.seen == [] and ctx.record.extra["approval"] == "denied"


async def test_no_decision_in_time_is_a_refusal() -> None:
    approvals = stage(timeout=0.02)
    with pytest.raises(ApprovalDeniedError, match=r"was not granted: no approval within 0\.02s"):
        await asyncio.wait_for(approvals(gated(), Upstream()), 2)
    assert await approvals.book.pending() == []


async def test_a_full_queue_refuses_at_once() -> None:
    approvals = stage(max_pending=1)
    waiting = asyncio.ensure_future(approvals(gated(), Upstream()))
    await wait_until(approvals.book.pending)
    with pytest.raises(ApprovalDeniedError, match="queue is full"):
        await approvals(gated(), Upstream())
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_an_sse_client_gets_a_stream_that_carries_the_answer() -> None:
    approvals, upstream = stage(), Upstream()
    ctx = gated(headers=SSE, request_id=8)
    reply = await approvals(ctx, upstream)
    assert reply.status == 200 and reply.content_type == EVENT_STREAM and upstream.seen == []
    decided = asyncio.ensure_future(decide_first(approvals.book, True))
    messages = await asyncio.wait_for(stream_messages(reply), 2)
    await decided
    assert messages == [{"jsonrpc": "2.0", "id": 8, "result": {"content": [], "n": 1}}]
    assert ctx.record.http_status == 200


async def test_a_refusal_on_the_stream_is_a_tool_result_the_model_reads() -> None:
    approvals = stage()
    ctx = gated(headers=SSE)
    reply = await approvals(ctx, Upstream())
    decided = asyncio.ensure_future(decide_first(approvals.book, False, "nope"))
    [message] = await asyncio.wait_for(stream_messages(reply), 2)
    await decided
    assert message["result"]["isError"] is True
    assert message["result"]["content"][0]["text"].endswith("was not granted: nope")
    assert ctx.record.outcome == "denied"


async def test_a_streamed_answer_is_relayed_event_by_event() -> None:
    async def events() -> AsyncIterator[SseEvent]:
        yield SseEvent(data='{"jsonrpc":"2.0","method":"notifications/progress","params":{}}')
        yield SseEvent(data='{"jsonrpc":"2.0","id":1,"result":{}}')

    approvals = stage()
    reply = await approvals(gated(headers=SSE), Upstream(Reply(headers={"Content-Type": EVENT_STREAM},
                                                               events=events())))
    decided = asyncio.ensure_future(decide_first(approvals.book, True))
    messages = await asyncio.wait_for(stream_messages(reply), 2)
    await decided
    assert [message.get("method") for message in messages] == ["notifications/progress", None]


async def test_an_answer_without_a_json_rpc_response_becomes_an_upstream_error_event() -> None:
    approvals = stage()
    reply = await approvals(gated(headers=SSE, request_id=3), Upstream(Reply.empty(202)))
    decided = asyncio.ensure_future(decide_first(approvals.book, True))
    [message] = await asyncio.wait_for(stream_messages(reply), 2)
    await decided
    assert message["id"] == 3 and message["error"]["code"] == -31002
    assert "HTTP 202 without a JSON-RPC response" in message["error"]["message"]


async def test_a_stream_closed_before_it_started_withdraws_the_approval() -> None:
    approvals = stage()
    reply = await approvals(gated(headers=SSE), Upstream())
    assert len(await approvals.book.pending()) == 1
    await reply.finish()  # the client left before any event was read
    assert await approvals.book.pending() == []


async def test_only_an_unanswered_approval_is_counted() -> None:
    """The count behind the alert "approvals waiting long": a timeout counts, an approver's denial does not."""
    counted: list[str] = []
    book = ApprovalBook()
    impatient = ApprovalStage(ApprovalConfig(timeout_seconds=0.05), book, count=counted.append)
    with pytest.raises(ApprovalDeniedError):
        await impatient(gated(), Upstream())
    assert counted == ["approval_timeouts"]
    patient = ApprovalStage(ApprovalConfig(timeout_seconds=5), book, count=counted.append)
    waiting = asyncio.create_task(patient(gated(), Upstream()))
    await decide_first(book, approved=False, note="no")
    with pytest.raises(ApprovalDeniedError):
        await waiting
    assert counted == ["approval_timeouts"]
