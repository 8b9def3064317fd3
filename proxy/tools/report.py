"""The report's formats: Markdown (for people, the default), JSON (schema_version 1, see report.schema.json) and
SARIF 2.1.0 (for code-scanning dashboards). The HTML page is in report_html.py."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import orjson

from proxy.tools.findings import SEVERITY_ORDER, Finding, Severity
from proxy.tools.scan import Report, Subject

SCHEMA_VERSION = 1
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVELS = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}
SARIF_SCORES = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.0", Severity.LOW: "2.0"}


def version() -> str:
    try:
        return metadata.version("mcp-sidecar")
    except metadata.PackageNotFoundError:
        return "0"


def finding_document(subject: Subject, item: Finding) -> dict[str, Any]:
    return {"id": item.id, "rule": item.rule.id, "title": item.rule.title, "severity": item.severity.value,
            "kind": subject.kind, "tool": item.tool, "location": item.location, "evidence": item.evidence,
            "fix": item.fix}


def summary(report: Report) -> dict[str, int]:
    counts = {severity.value: 0 for severity in reversed(SEVERITY_ORDER)}
    for _, item in report.findings:
        counts[item.severity.value] += 1
    return counts


def to_document(report: Report) -> dict[str, Any]:
    policy: dict[str, Any] = {"evaluated": report.policy is not None, "note": report.policy_note}
    if report.policy is not None:
        policy.update(revision=report.policy.revision, principals=report.policy.principals,
                      decisions=report.policy.decisions)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": report.generated_at,
        "scanner": {"name": "mcp-sidecar", "version": version()},
        "source": report.source,
        "server": report.server,
        "score": report.score,
        "summary": summary(report),
        "counts": report.counts,
        "lock": report.lock,
        "policy": policy,
        "findings": [finding_document(subject, item) for subject, item in report.findings],
    }


def to_json(report: Report) -> str:
    return orjson.dumps(to_document(report), option=orjson.OPT_INDENT_2).decode() + "\n"


def to_markdown(report: Report) -> str:
    server = f"{report.server.get('name', '?')} {report.server.get('version', '')}".strip()
    counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report.counts.items())
    lines = [f"# MCP security report: {server}", "",
             f"Score **{report.score}/100** · {_summary_text(report)} · {counts} · source `{_cell(report.source)}`",
             f"Generated {report.generated_at} by mcp-sidecar {version()}.", "",
             f"Policy coverage: {report.policy_note}", ""]
    if report.findings:
        lines += ["| severity | rule | tool | where | evidence | fix |", "|---|---|---|---|---|---|"]
        lines += [f"| {item.severity.value} | {item.rule.id} | {_cell(item.tool or '-')} | {_cell(item.location)} "
                  f"| {_cell(item.evidence)} | {_cell(item.fix)} |" for _, item in report.findings]
    else:
        lines.append("No findings.")
    if report.policy is not None and report.policy.decisions:
        lines += ["", "## Policy decisions per principal", "",
                  "| tool | " + " | ".join(report.policy.principals) + " |",
                  "|---|" + "---|" * len(report.policy.principals)]
        lines += [f"| {_cell(tool)} | " + " | ".join(row[label] for label in report.policy.principals) + " |"
                  for tool, row in report.policy.decisions.items()]
    return "\n".join(lines) + "\n"


def _summary_text(report: Report) -> str:
    return ", ".join(f"{n} {severity}" for severity, n in summary(report).items())


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "\\`")


def to_sarif(report: Report) -> str:
    rules = sorted(report.rules, key=lambda rule: rule.id)
    index = {rule.id: position for position, rule in enumerate(rules)}
    document = {
        "version": "2.1.0",
        "$schema": SARIF_SCHEMA,
        "runs": [{
            "tool": {"driver": {"name": "mcp-sidecar", "version": version(), "rules": [_sarif_rule(r) for r in rules]}},
            "automationDetails": {"id": f"mcp-sidecar-scan/{report.server.get('name', 'upstream')}"},
            "results": [_sarif_result(subject, item, index, report.artifact) for subject, item in report.findings],
            "properties": {"score": report.score, "policyCoverage": report.policy_note},
        }],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def _sarif_rule(rule: Any) -> dict[str, Any]:
    return {"id": rule.id, "name": rule.id.replace(".", "/"), "shortDescription": {"text": rule.title},
            "help": {"text": rule.fix}}


def _sarif_result(subject: Subject, item: Finding, index: dict[str, int], artifact: str | None) -> dict[str, Any]:
    """One result; its physical location is the file the scan read its upstream from (config, lock or tools/list
    file), as dashboards want a file, and its logical location names the tool and the field."""
    name = item.tool or "server"
    location: dict[str, Any] = {"logicalLocations": [{
        "name": name, "kind": "function" if subject.kind == "tool" else "member",
        "fullyQualifiedName": f"{subject.kind}/{name}/{item.location}"}]}
    if artifact is not None:
        location["physicalLocation"] = {"artifactLocation": {"uri": artifact}}
    return {
        "ruleId": item.rule.id,
        "ruleIndex": index[item.rule.id],
        "level": SARIF_LEVELS[item.severity],
        "message": {"text": f"{name}: {item.evidence}. Fix: {item.fix}"},
        "locations": [location],
        "partialFingerprints": {"mcpSidecarFinding/v1": item.id},
        "properties": {"severity": item.severity.value, "security-severity": SARIF_SCORES[item.severity]},
    }
