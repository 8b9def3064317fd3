"""Approval stage: a call that policy marks `require_approval` waits for an approver on the admin listener; one it
marks `require_confirmation` asks the caller's user (2026-07-28 clients that can elicit), else falls back to an
approval."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import structlog

from proxy import jsonrpc, mcp
from proxy.approval.arguments import arguments_hash, shown_arguments
from proxy.approval.book import ApprovalBook, PendingApproval, timed_out
from proxy.approval.confirmation import Binding, ConfirmationRefused, Confirmations, can_elicit, is_our_retry, stripped
from proxy.approval.notifier import WebhookNotifier
from proxy.catalog import ToolCatalog
from proxy.config import ApprovalConfig
from proxy.context import CallContext
from proxy.errors import ApprovalDeniedError, ProxyError, UpstreamError, error_reply, internal_error_reply
from proxy.net.sse_codec import SseEvent
from proxy.pipeline import Handler
from proxy.reply import EVENT_STREAM, Reply
from proxy.stages.deps import Deps

log = structlog.get_logger("proxy.approval")


class ApprovalStage:
    name = "approval"

    def __init__(self, config: ApprovalConfig, book: ApprovalBook, catalog: ToolCatalog | None = None,
                 notifier: WebhookNotifier | None = None, count: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.book = book
        self.catalog = catalog
        self.notifier = notifier
        self.count = count  # deps.metrics.count: approvals nobody answered in time
        key = Path(config.confirmation_secret_file).read_bytes().rstrip(b"\r\n") \
            if config.confirmation_secret_file else None
        self.confirmations = Confirmations(key, config.confirmation_ttl_seconds)

    @classmethod
    def from_config(cls, config: ApprovalConfig, deps: Deps) -> ApprovalStage | None:
        """A policy obligation asks for approval, or a drifted tool with tools.on_drift: approve; with neither
        possible the stage has nothing to do."""
        tools = deps.config.tools
        asked = deps.config.policy.engine != "off" or (tools.lock_file is not None and tools.on_drift == "approve")
        return cls(config, deps.approvals, deps.catalog, deps.notifier, deps.metrics.count) if asked else None

    async def summary(self, ctx: CallContext) -> dict[str, object]:
        """What an approver sees: who, what, the arguments as `show_arguments` allows, their hash (which a decision
        must name), the tool's annotations from the sidecar's own catalog, and why policy asked."""
        info = await self.catalog.get(ctx.target) if self.catalog is not None and ctx.method == "tools/call" \
            and ctx.target else None
        return {"principal": ctx.principal.subject, "issuer": ctx.principal.issuer, "method": ctx.method,
                "target": ctx.target,
                "arguments": shown_arguments(ctx.arguments, self.config.show_arguments, ctx.record.redact),
                "arguments_shown": self.config.show_arguments,
                "arguments_hash": arguments_hash(ctx.method, ctx.target, ctx.arguments),
                "annotations": info.annotations if info is not None else None,
                "reasons": list(ctx.record.policy_reasons), "decision_id": ctx.record.decision_id,
                "policy_revision": ctx.record.policy_revision,
                # tools.on_drift: approve; the approver sees what changed
                **({"tool_drift": ctx.record.extra["tool_drift"]} if "tool_drift" in ctx.record.extra else {})}

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        if ctx.obligations.get("require_confirmation") and ctx.is_request:
            if ctx.era is mcp.Era.MODERN and (is_our_retry(ctx.params) or can_elicit(ctx.params)):
                return await self._confirmed(ctx, call_next)
            ctx = ctx.evolve(obligations={**ctx.obligations, "require_approval": True})  # cannot ask the user
        if not ctx.obligations.get("require_approval") or not ctx.is_request:
            return await call_next(ctx)
        return await self._approved(ctx, call_next)

    async def _confirmed(self, ctx: CallContext, call_next: Handler) -> Reply:
        """First call: an input_required result asking the user. Retry: the user's yes and our state, verified,
        then the call goes on without them (through an approval too if policy asks for both)."""
        binding = Binding(f"{ctx.principal.issuer}|{ctx.principal.subject}",
                          arguments_hash(ctx.method, ctx.target, ctx.arguments), ctx.record.policy_revision)
        if not is_our_retry(ctx.params):
            ctx.record.extra["confirmation"] = "asked"
            return Reply.json(jsonrpc.result_message(ctx.request_id, self.confirmations.ask(binding, ctx.target)))
        try:
            self.confirmations.check(ctx.params, binding)
        except ConfirmationRefused as refused:
            ctx.record.extra["confirmation"] = "refused"
            raise ApprovalDeniedError(f"Confirmation refused: {refused}") from None
        ctx.record.extra["confirmation"] = "confirmed"
        ctx = ctx.evolve(message={**ctx.message, "params": stripped(ctx.params)})
        if ctx.obligations.get("require_approval"):
            return await self._approved(ctx, call_next)
        return await call_next(ctx)

    async def _approved(self, ctx: CallContext, call_next: Handler) -> Reply:
        approval = await self.book.open(await self.summary(ctx))  # ApprovalUnavailableError: fail closed
        if approval is None:
            raise ApprovalDeniedError("Approval queue is full; try again later")
        ctx.record.approval_id = approval.id
        log.info("approval.pending", approval_id=approval.id, method=ctx.method, target=ctx.target)
        if self.notifier is not None:
            self.notifier.pending(approval)
        if EVENT_STREAM not in ctx.headers.get("accept", ""):  # a client that takes JSON only waits in silence
            return await self._decided(ctx, approval, call_next)
        # Otherwise the answer is a stream from the start, so the wait carries keepalive comments (the transport's
        # heartbeat) and no idle timeout between client and sidecar cuts it.
        reply = Reply(status=200, headers={"Content-Type": EVENT_STREAM})
        reply.events = self._streamed(ctx, approval, call_next, reply, contextvars.copy_context())
        reply.on_done(lambda _: self.book.withdraw(approval))  # also when the stream never started
        return reply

    async def _decided(self, ctx: CallContext, approval: PendingApproval, call_next: Handler) -> Reply:
        """The call's own answer once approved; a denial (or no decision in time) raises ApprovalDeniedError."""
        outcome = await self.book.wait(approval, self.config.timeout_seconds)
        ctx.record.extra["approval"] = "approved" if outcome.approved else "denied"
        ctx.record.approver = outcome.approver
        if outcome == timed_out(self.config.timeout_seconds) and self.count is not None:
            self.count("approval_timeouts")
        if self.notifier is not None:
            self.notifier.decided(approval, outcome)
        if not outcome.approved:
            reason = f"Approval {approval.id} was not granted" + (f": {outcome.note}" if outcome.note else "")
            raise ApprovalDeniedError(reason, data={"approval_id": approval.id})
        return await call_next(ctx)

    async def _streamed(self, ctx: CallContext, approval: PendingApproval, call_next: Handler, reply: Reply,
                        stages_context: contextvars.Context) -> AsyncIterator[SseEvent]:
        """The events of a streamed answer: none while undecided, then the answer's. The rest of the chain runs in
        the context the outer stages had set (the current span, for one), which the transport's task no longer has."""
        try:
            answer = await asyncio.create_task(self._decided(ctx, approval, call_next), context=stages_context)
        except ProxyError as error:
            answer = error_reply(error, ctx)
        except Exception:
            log.exception("approval.answer_failed", method=ctx.method)
            answer = internal_error_reply(ctx)
        ctx.record.http_status = reply.status  # the client's status went out with the stream's head
        message = answer.parsed_body() if answer.events is None else None
        reply.adopt(answer)
        if answer.events is not None:
            async for event in answer.events:
                yield event
            return
        if not jsonrpc.is_response_to(message, ctx.request_id):
            error = UpstreamError(f"Upstream answered HTTP {answer.status} without a JSON-RPC response")
            message = error_reply(error, ctx).message
        yield SseEvent(data=orjson.dumps(message).decode())
