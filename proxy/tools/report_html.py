"""The report as one standalone HTML page: inline style, no script, no external assets, every text escaped
(descriptions come from the server being judged and may hold markup meant for whoever opens the page)."""

from __future__ import annotations

from html import escape

from proxy.tools.report import summary, version
from proxy.tools.scan import Report

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1b1f24}
h1{font-size:1.5rem;margin:0 0 .3rem} .meta{color:#57606a;margin:.2rem 0}
.score{font-size:3rem;font-weight:700;margin:.5rem 0} .score small{font-size:1rem;color:#57606a}
table{border-collapse:collapse;width:100%;margin:1rem 0} th,td{border:1px solid #d0d7de;padding:.35rem .5rem;
text-align:left;vertical-align:top} th{background:#f6f8fa} code{font-size:.85em;word-break:break-all}
.sev{font-weight:600;text-transform:uppercase;font-size:.8em;padding:.1rem .4rem;border-radius:.3rem;color:#fff}
.critical{background:#8b0000}.high{background:#cf222e}.medium{background:#bf8700}.low{background:#57606a}
.allow{color:#1a7f37}.deny{color:#57606a}.approval{color:#9a6700}
"""


def to_html(report: Report) -> str:
    server = f"{report.server.get('name', '?')} {report.server.get('version', '')}".strip()
    counts = ", ".join(f"{n} {escape(kind.replace('_', ' '))}" for kind, n in report.counts.items())
    severities = ", ".join(f"{n} {severity}" for severity, n in summary(report).items())
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>MCP security report: {escape(server)}</title><style>{STYLE}</style></head><body>",
        f"<h1>MCP security report: {escape(server)}</h1>",
        f'<p class="score" id="score">{report.score}<small>/100</small></p>',
        f'<p class="meta">{severities} · {counts}</p>',
        f'<p class="meta">Source <code>{escape(report.source)}</code> · generated {escape(report.generated_at)} '
        f"by mcp-sidecar {escape(version())}</p>",
        f'<p class="meta">Policy coverage: {escape(report.policy_note)}</p>',
        _findings_table(report),
        _decisions_table(report),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _findings_table(report: Report) -> str:
    if not report.findings:
        return '<p id="findings">No findings.</p>'
    rows = [f'<tr><td><span class="sev {item.severity.value}">{item.severity.value}</span></td>'
            f"<td><code>{escape(item.rule.id)}</code></td><td>{escape(item.tool or '-')}</td>"
            f"<td><code>{escape(item.location)}</code></td><td><code>{escape(item.evidence)}</code></td>"
            f"<td>{escape(item.fix)}</td></tr>" for _, item in report.findings]
    return ('<table id="findings"><tr><th>severity</th><th>rule</th><th>tool</th><th>where</th><th>evidence</th>'
            "<th>fix</th></tr>" + "".join(rows) + "</table>")


def _decisions_table(report: Report) -> str:
    if report.policy is None or not report.policy.decisions:
        return ""
    labels = report.policy.principals
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows = ["<tr><td>" + escape(tool) + "</td>" + "".join(
        f'<td class="{row[label]}">{row[label]}</td>' for label in labels) + "</tr>"
        for tool, row in report.policy.decisions.items()]
    return ("<h2>Policy decisions per principal</h2>"
            f'<table id="decisions"><tr><th>tool</th>{head}</tr>' + "".join(rows) + "</table>")
