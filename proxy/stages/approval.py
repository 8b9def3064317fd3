"""Approval stage: a call that policy marks `require_approval` waits for an approver on the admin listener."""

from __future__ import annotations

import structlog

from proxy.approval import ApprovalBook
from proxy.config import ApprovalConfig
from proxy.context import CallContext
from proxy.errors import ApprovalDenied
from proxy.pipeline import Deps, Handler
from proxy.reply import Reply

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
        approved, note = await self.book.wait(approval, self.config.timeout_seconds)
        ctx.record.extra["approval"] = "approved" if approved else "denied"
        if not approved:
            reason = f"Approval {approval.id} was not granted" + (f": {note}" if note else "")
            raise ApprovalDenied(reason, data={"approval_id": approval.id})
        return await call_next(ctx)
