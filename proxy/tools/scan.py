"""The security report: every check over the server's definitions, drift against a lock, policy coverage.

`build_report` takes what was listed (live or from a saved tools/list result) and returns a Report; the formats
in report.py render it. Findings are sorted (severity, tool, rule, location), so two runs over the same server
give the same body; only `generated_at` differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from proxy.tools import coverage as coverage_rules
from proxy.tools import poisoning, risks
from proxy.tools.coverage import Coverage
from proxy.tools.drift import Comparison, Status
from proxy.tools.findings import Finding, Rule, Severity, finding, score
from proxy.tools.pinning import KINDS

DRIFT_CHANGED = Rule("drift.changed", "a definition that differs from the reviewed lock",
                     "Review the change (`mcp-sidecar tools diff`); accept it with `mcp-sidecar tools lock --update`.")
DRIFT_UNLOCKED = Rule("drift.unlocked", "a definition the reviewed lock does not hold",
                      "Review it (`mcp-sidecar tools diff`) and add it with `mcp-sidecar tools lock --update`.")
DRIFT_REMOVED = Rule("drift.removed", "a locked definition the server no longer offers",
                     "Confirm the removal and rewrite the lock with `mcp-sidecar tools lock --update`.")
DRIFT_RULES = {Status.CHANGED: (DRIFT_CHANGED, Severity.HIGH), Status.UNLOCKED: (DRIFT_UNLOCKED, Severity.MEDIUM),
               Status.REMOVED: (DRIFT_REMOVED, Severity.LOW)}
ALL_RULES: tuple[Rule, ...] = (*poisoning.RULES, *risks.RULES, DRIFT_CHANGED, DRIFT_UNLOCKED, DRIFT_REMOVED,
                               *coverage_rules.RULES)
SUBJECT_KIND = {"tools": "tool", "prompts": "prompt", "resource_templates": "resource_template"}


@dataclass(frozen=True, slots=True)
class Subject:
    """What a finding is about: a tool, prompt or resource template by name (None: the server)."""

    kind: str
    name: str | None


@dataclass(slots=True)
class Report:
    generated_at: str
    source: str  # what was scanned: the upstream's URL or command, or the saved tools/list file
    server: dict[str, Any]
    counts: dict[str, int]  # tools, prompts, resource_templates
    findings: list[tuple[Subject, Finding]]
    policy: Coverage | None
    policy_note: str  # why coverage was not evaluated, or which policy was
    lock: str | None  # the lock compared against, if any
    artifact: str | None = None  # the file findings are attributed to in SARIF: config, lock or tools/list file
    rules: tuple[Rule, ...] = field(default=ALL_RULES)

    @property
    def score(self) -> int:
        return score([item for _, item in self.findings])


def definition_findings(definitions: dict[str, list[dict[str, Any]]]) -> list[tuple[Subject, Finding]]:
    found: list[tuple[Subject, Finding]] = []
    tools = _by_key("tools", definitions)
    for kind in KINDS:
        for key, definition in sorted(_by_key(kind, definitions).items()):
            subject = Subject(SUBJECT_KIND[kind], key)
            for location, text in poisoning.texts({k: v for k, v in definition.items() if k != KINDS[kind][0]}):
                found.extend((subject, item) for item in poisoning.check_text(key, location, text))
            if kind == "tools":
                found.extend((subject, item) for item in risks.check_tool(key, definition))
    found.extend((Subject("tool", item.tool), item) for item in poisoning.check_names(tools))
    return found


def drift_findings(comparison: Comparison) -> Iterator[tuple[Subject, Finding]]:
    for drift in comparison.drifts:
        rule, severity = DRIFT_RULES[drift.status]
        evidence = drift.summary()
        if drift.changes:
            evidence += ": " + "; ".join(poisoning.escape_hidden(change.path) for change in drift.changes[:5])
        yield Subject(SUBJECT_KIND[drift.kind], drift.key), finding(rule, severity, drift.key, "lock", evidence)


def apply_coverage(found: list[tuple[Subject, Finding]], coverage: Coverage) -> list[tuple[Subject, Finding]]:
    """Inputs an argument rule reads are covered by policy; the rest gain that fact in their evidence."""
    kept: list[tuple[Subject, Finding]] = []
    for subject, item in found:
        if item.rule is risks.UNCONSTRAINED:
            argument = item.location.split(".")[2]  # inputSchema.properties.<argument>...
            if (subject.name, argument) in coverage.covered_inputs:
                continue
            item = finding(item.rule, item.severity, item.tool, item.location,
                           item.evidence + ", and no policy rule reads it", item.fix)
        kept.append((subject, item))
    kept.extend((Subject("tool", item.tool), item) for item in coverage.findings)
    return kept


def build_report(*, generated_at: str, source: str, server: dict[str, Any],
                 definitions: dict[str, list[dict[str, Any]]], comparison: Comparison | None, lock: str | None,
                 coverage: Coverage | None, policy_note: str, artifact: str | None = None) -> Report:
    found = definition_findings(definitions)
    if comparison is not None:
        found.extend(drift_findings(comparison))
    if coverage is not None:
        found = apply_coverage(found, coverage)
    found.sort(key=lambda pair: (pair[1].sort_key(), pair[0].kind))
    counts = {kind: len(_by_key(kind, definitions)) for kind in KINDS}
    return Report(generated_at, source, dict(server), counts, found, coverage, policy_note, lock, artifact)


def _by_key(kind: str, definitions: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    key = KINDS[kind][0]
    return {d[key]: d for d in definitions.get(kind, []) if isinstance(d, dict) and isinstance(d.get(key), str)}
