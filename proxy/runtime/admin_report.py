"""`GET /tools/report?format=json|markdown|sarif|html` on the admin listener: the security report of the running
sidecar's own view of the upstream's tools, with drift against the lock in force. Policy coverage is left to
`mcp-sidecar scan`, which evaluates the policy for every principal and is not something to run per request."""

from __future__ import annotations

import time

from aiohttp import web

from proxy.runtime.tools_cli import upstream_source
from proxy.stages.deps import Deps
from proxy.timestamps import utc_text
from proxy.tools.drift import compare
from proxy.tools.pinning import Snapshot
from proxy.tools.report import to_json, to_markdown, to_sarif
from proxy.tools.report_html import to_html
from proxy.tools.scan import Report, build_report

FORMATS = {"json": (to_json, "application/json"), "markdown": (to_markdown, "text/markdown"),
           "sarif": (to_sarif, "application/sarif+json"), "html": (to_html, "text/html")}
NOTE = "not evaluated by the running sidecar (run `mcp-sidecar scan` for policy coverage)"


async def live_report(deps: Deps) -> Report | None:
    """The report of the catalog's current view, or None when the upstream cannot be listed now."""
    tools = await deps.catalog.all()
    if tools is None:
        return None
    definitions = {"tools": [info.definition for info in tools.values()]}
    pins = deps.pins
    comparison = None
    if pins is not None:
        locked = Snapshot(entries={"tools": dict(pins.lock.tools), "prompts": {}, "resource_templates": {}})
        comparison = compare(locked, Snapshot.from_definitions({}, definitions))
    return build_report(generated_at=utc_text(time.time_ns()), source=upstream_source(deps.config),
                        server={"name": deps.config.upstream.name}, definitions=definitions, comparison=comparison,
                        lock=str(pins.path) if pins is not None else None, coverage=None, policy_note=NOTE)


async def tools_report(request: web.Request, deps: Deps) -> web.Response:
    chosen = request.query.get("format", "json")
    if chosen not in FORMATS:
        return web.json_response({"error": f"format must be one of {sorted(FORMATS)}"}, status=400)
    report = await live_report(deps)
    if report is None:
        return web.json_response({"error": "the upstream's tools cannot be listed right now"}, status=503)
    render, content_type = FORMATS[chosen]
    return web.Response(text=render(report), content_type=content_type, charset="utf-8")
