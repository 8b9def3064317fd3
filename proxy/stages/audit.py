"""Audit stage: one structured event per message, written once the reply is complete."""

from __future__ import annotations

import asyncio

from proxy.audit import AuditLog
from proxy.config import AuditConfig
from proxy.context import CallContext
from proxy.pipeline import Deps, Handler
from proxy.reply import Reply


class AuditStage:
    name = "audit"

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    @classmethod
    def from_config(cls, config: AuditConfig, deps: Deps) -> AuditStage | None:
        return cls(AuditLog(config)) if config.enabled else None

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        try:
            reply = await call_next(ctx)
        except asyncio.CancelledError:  # the client went away before an answer: still one event
            ctx.record.fail("cancelled", "client_disconnected")
            self.log.record(ctx, None)
            raise
        reply.on_done(lambda done: self.log.record(ctx, done))
        return reply

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.log.close()
