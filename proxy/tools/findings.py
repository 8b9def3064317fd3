"""Findings, their rules and severities, and the score they add up to.

Score: 100 less the weight of every finding (critical 25, high 10, medium 4, low 1), never below 0. A server with
no findings scores 100; one sign of tool poisoning alone takes at least 10 points.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return SEVERITY_ORDER.index(self)


SEVERITY_ORDER = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
WEIGHTS = {Severity.LOW: 1, Severity.MEDIUM: 4, Severity.HIGH: 10, Severity.CRITICAL: 25}


@dataclass(frozen=True, slots=True)
class Rule:
    id: str  # e.g. poisoning.invisible-unicode
    title: str  # one line: what the rule finds
    fix: str  # the usual remedy; a finding may give a more specific one


@dataclass(frozen=True, slots=True)
class Finding:
    rule: Rule
    severity: Severity
    tool: str | None  # the tool (or prompt, template) concerned; None for the server as a whole
    location: str  # where the evidence is: a path into the definition (description, inputSchema.properties.path)
    evidence: str  # the exact text or schema fragment, or what the policy decided
    fix: str

    @property
    def id(self) -> str:
        """Stable across runs: the rule, the tool and the location (not the evidence, which a fix may change)."""
        digest = hashlib.sha256(f"{self.rule.id}\0{self.tool}\0{self.location}".encode()).hexdigest()
        return digest[:16]

    def sort_key(self) -> tuple[int, str, str, str]:
        return -self.severity.rank, self.tool or "", self.rule.id, self.location


def finding(rule: Rule, severity: Severity, tool: str | None, location: str, evidence: str,
            fix: str | None = None) -> Finding:
    return Finding(rule, severity, tool, location, evidence, fix or rule.fix)


def score(findings: list[Finding]) -> int:
    return max(0, 100 - sum(WEIGHTS[item.severity] for item in findings))


def at_least(findings: list[Finding], threshold: Severity) -> list[Finding]:
    return [item for item in findings if item.severity.rank >= threshold.rank]
