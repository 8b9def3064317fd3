"""Approval stage: a call that policy marks `require_approval` waits for an approver on the admin listener."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog

from proxy.approval import ApprovalBook, PendingApproval
from proxy.config import ApprovalConfig
from proxy.context import CallContext
from proxy.errors import ApprovalDenied, error_reply
from proxy.pipeline import Deps, Handler
from proxy.reply import EVENT_STREAM, Reply
from proxy.sse_codec import SseEvent

log = structlog.get_logger("proxy.approval")


class ApprovalStage:
    name = "approval"

    def __init__(self, config: ApprovalConfig, book: ApprovalBook) -> None:
        self.config = config
        self.book = book

    @classmethod
    def from_config(cls, config: ApprovalConfig, deps: Deps) -> ApprovalStage | None:
        """Only a policy obligation asks for approval: without a policy engine the stage has nothing to do."""
        return cls(config, deps.approvals) if deps.config.policy.engine != "off" else None

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        if not ctx.obligations.get("require_approval") or not ctx.is_request:
            return await call_next(ctx)
        summary = {"principal": ctx.principal.subject, "method": ctx.method, "target": ctx.target,
                   "reasons": list(ctx.record.policy_reasons), "decision_id": ctx.record.decision_id}
        approval = self.book.open(summary)
        if approval is None:
            raise ApprovalDenied("Approval queue is full; try again later")
        ctx.record.approval_id = approval.id
        log.info("approval.pending", approval_id=approval.id, method=ctx.method, target=ctx.target)
        # The answer is a stream from the start, so the wait can carry keepalive comments (the transport's
        # heartbeat) and no idle timeout between client and sidecar cuts it.
        reply = Reply(status=200, headers={"Content-Type": EVENT_STREAM})
        reply.events = self._answer_when_decided(ctx, approval, call_next, reply)
        reply.on_done(lambda _: self.book.withdraw(approval))  # also when the stream never started
        return reply

    async def _answer_when_decided(self, ctx: CallContext, approval: PendingApproval, call_next: Handler,
                                   reply: Reply) -> AsyncIterator[SseEvent]:
        approved, note = await self.book.wait(approval, self.config.timeout_seconds)
        ctx.record.extra["approval"] = "approved" if approved else "denied"
        if approved:
            answer = await call_next(ctx)
        else:
            reason = f"Approval {approval.id} was not granted" + (f": {note}" if note else "")
            answer = error_reply(ApprovalDenied(reason, data={"approval_id": approval.id}), ctx)
        ctx.record.http_status = reply.status  # the client's status went out with the stream's head
        reply.adopt(answer)
        async for event in answer.as_events():
            yield event
