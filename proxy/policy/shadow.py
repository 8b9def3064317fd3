"""Shadow mode: a candidate policy decides beside the active one; disagreements are logged and counted only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from proxy.context import CallContext
from proxy.policy.engine import DECISION_RULE, Decision, Engine, PolicyUnavailableError, decision_from

log = structlog.get_logger("proxy.policy")


class Shadow:
    def __init__(self, engine: Engine, on_disagreement: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.on_disagreement = on_disagreement
        self.decisions = 0
        self.disagreements = 0

    async def compare(self, ctx: CallContext, document: dict[str, Any], active: Decision) -> Decision:
        """The candidate's decision; never enforced, only compared with the active one."""
        try:
            value, revision = await self.engine.evaluate(DECISION_RULE, document)
            candidate = decision_from(value, revision)
        except PolicyUnavailableError as exc:
            candidate = Decision.deny(f"shadow policy could not be evaluated: {exc}", self.engine.revision)
        self.decisions += 1
        if (candidate.allow, candidate.obligations) != (active.allow, active.obligations):
            self.disagreements += 1
            if self.on_disagreement is not None:
                self.on_disagreement()
            ctx.record.extra["policy_shadow"] = {"allow": candidate.allow, "reasons": list(candidate.reasons),
                                                 "revision": candidate.revision}
            log.info("policy.shadow_disagreement", decision_id=ctx.record.decision_id, method=ctx.method,
                     target=ctx.target, active=active.allow, candidate=candidate.allow,
                     candidate_reasons=list(candidate.reasons), candidate_revision=candidate.revision,
                     disagreements=self.disagreements)
        return candidate

    async def readiness(self) -> tuple[bool, str]:
        _, detail = await self.engine.readiness()
        # A broken candidate never makes the sidecar unready: it is not enforced.
        return True, f"{detail}; {self.disagreements} of {self.decisions} decisions disagreed"
