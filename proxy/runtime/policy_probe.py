"""Policy coverage, the asking half: the configured engine evaluated for each tool and principal with the input
document the sidecar would build, and the configured rate limits and cache rules applied to each answer.
What the answers mean is proxy/tools/coverage.py's business."""

from __future__ import annotations

from typing import Any

from proxy import mcp
from proxy.catalog import ToolInfo
from proxy.config import CacheConfig, RateLimitsConfig
from proxy.context import CallContext
from proxy.limits.buckets import Caller
from proxy.policy import narrowing
from proxy.policy.engine import DECISION_RULE, Decision, Engine, PolicyUnavailableError, decision_from, policy_input
from proxy.stages.ratelimit import spec_of
from proxy.tools.coverage import HOSTILE, Coverage, ProbePrincipal, Verdict, judge, sample_arguments
from proxy.tools.risks import RiskyInput, risky_inputs


class CoverageCheck:
    """Evaluates the policy over every tool for every principal and hands the answers to the judge."""

    def __init__(self, engine: Engine, upstream: str, rate_limits: RateLimitsConfig, cache: CacheConfig,
                 policy_text: str | None) -> None:
        self.engine = engine
        self.upstream = upstream
        self.specs = tuple(spec_of(bucket) for bucket in rate_limits.buckets)
        self.cache = cache
        self.policy_text = policy_text  # every policy file and the data, to find tool names in; None: unknown

    async def run(self, tools: dict[str, dict[str, Any]], principals: list[ProbePrincipal]) -> Coverage:
        coverage = Coverage(self.engine.revision, [p.label for p in principals])
        for name, definition in sorted(tools.items()):
            verdicts = {p.label: self.verdict(name, p, await self.decide(name, definition, p)) for p in principals}
            coverage.decisions[name] = {label: verdict.outcome for label, verdict in verdicts.items()}
            coverage.findings.extend(judge(name, definition, principals, verdicts, self.policy_text))
            for risky in risky_inputs(definition):
                if await self.argument_ruled(name, definition, risky, principals):
                    coverage.covered_inputs.add((name, risky.argument))
        return coverage

    async def decide(self, name: str, definition: dict[str, Any], probe: ProbePrincipal,
                     arguments: dict[str, Any] | None = None) -> Decision:
        document = self._input(name, definition, probe, arguments)
        try:
            value, revision = await self.engine.evaluate(DECISION_RULE, document)
        except PolicyUnavailableError as exc:
            return Decision.deny(f"policy could not be evaluated: {exc}")
        return decision_from(value, revision)

    def verdict(self, name: str, probe: ProbePrincipal, decision: Decision) -> Verdict:
        cache = decision.obligations.get("cache") or {}
        configured = self.cache.tools.get(name)
        public = self.cache.enabled and (cache.get("scope") == "public" or (
            configured is not None and configured.scope == "public"))
        return Verdict(decision.allow, bool(decision.obligations.get("require_approval")),
                       bool(self._buckets(name, probe, decision)), public)

    async def argument_ruled(self, name: str, definition: dict[str, Any], risky: RiskyInput,
                             principals: list[ProbePrincipal]) -> bool:
        """Whether a policy rule reads the argument: argument_names names it, or its value changes a decision."""
        for probe in principals:
            bare = narrowing.without_arguments(self._input(name, definition, probe, None))
            try:
                names, _ = await self.engine.evaluate(narrowing.RULE, bare or {})
            except PolicyUnavailableError:
                names = None
            if isinstance(names, list) and (risky.argument in names or narrowing.ALL in names):
                return True
            hostile = await self.decide(name, definition, probe, {risky.argument: HOSTILE[risky.kind]})
            plain = await self.decide(name, definition, probe)
            if (hostile.allow, hostile.reasons) != (plain.allow, plain.reasons):
                return True
        return False

    def _input(self, name: str, definition: dict[str, Any], probe: ProbePrincipal,
               overrides: dict[str, Any] | None) -> dict[str, Any]:
        arguments = sample_arguments(definition, overrides)
        ctx = CallContext(kind=mcp.Kind.REQUEST, message={"jsonrpc": "2.0", "id": "scan", "method": "tools/call",
                                                           "params": {"name": name, "arguments": arguments}},
                          body=None, method="tools/call", request_id="scan", protocol_version=mcp.MODERN_VERSION,
                          era=mcp.Era.MODERN, target=name, arguments=arguments, session_id=None, headers={},
                          client_address=probe.client_address, principal=probe.principal)
        return policy_input(ctx, self.upstream, ToolInfo.from_definition(definition))

    def _buckets(self, name: str, probe: ProbePrincipal, decision: Decision) -> list[str]:
        named = (decision.obligations.get("rate_limit") or {}).get("buckets")
        if named is not None:
            return [bucket for bucket in named if any(spec.name == bucket for spec in self.specs)]
        caller = Caller(probe.principal.subject, probe.principal.claims, "tools/call", name, None,
                        probe.client_address)
        return [spec.name for spec in self.specs if spec.applies(caller)]
