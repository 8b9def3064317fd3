"""The stage order, written once. Each stage is built from its config section; disabled ones return None."""

from __future__ import annotations

from proxy.config import Config
from proxy.pipeline import Deps, Stage
from proxy.stages.approval import ApprovalStage
from proxy.stages.audit import AuditStage


def build_stages(config: Config, deps: Deps) -> list[Stage]:
    stages = [
        # tracing: outermost, so that denials and errors get spans too
        AuditStage.from_config(config.audit, deps),  # audit: so that a 401 is audited as well
        # auth: policy needs the principal
        # policy: before limits, so that a denied caller cannot drain a bucket
        ApprovalStage.from_config(config.approval, deps),  # approval: only calls policy allowed wait for a human
        # rate limit: keys and cost may come from policy obligations
        # cache: innermost, so that a hit has still passed auth, policy and limits
    ]
    return [stage for stage in stages if stage is not None]
