"""The stage order, written once. Each stage is built from its config section; disabled ones return None."""

from __future__ import annotations

from proxy.config import Config
from proxy.pipeline import Stage
from proxy.stages.approval import ApprovalStage
from proxy.stages.audit import AuditStage
from proxy.stages.auth import AuthStage
from proxy.stages.cache import CacheStage
from proxy.stages.deps import Deps
from proxy.stages.pinning import PinningStage
from proxy.stages.policy import PolicyStage
from proxy.stages.ratelimit import RateLimitStage
from proxy.stages.tracing import TracingStage


def build_stages(config: Config, deps: Deps) -> list[Stage]:
    stages = [
        TracingStage.from_config(config.telemetry, deps),  # tracing: outermost, so denials and errors get spans
        AuditStage.from_config(config.audit, deps),  # audit: so that a 401 is audited as well
        AuthStage.from_config(config.auth, deps),  # auth: policy needs the principal
        PolicyStage.from_config(config.policy, deps),  # policy: before limits, so a denied caller cannot drain a bucket
        PinningStage.from_config(config.tools, deps),  # pinning: after policy (a hidden tool shows no drift), pre-limit
        RateLimitStage.from_config(config.rate_limits, deps),  # rate limit: keys and cost may come from policy
        ApprovalStage.from_config(config.approval, deps),  # approval: after limits, so floods never reach a human
        CacheStage.from_config(config.cache, deps),  # cache: innermost, so a hit has passed auth, policy, limits
    ]
    return [stage for stage in stages if stage is not None]
