"""The console at /console: one page (HTML, CSS and JS from package data, nothing from a CDN) and the JSON it reads.

The page carries no data: without a valid credential it is answered 401 with its login form; everything it shows
comes from the API below and /approvals, each behind admin auth. Its figures come from the sidecar's own
readiness checks, metrics, audit ring, approval book and tool catalog, never from a second source.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from proxy.auth.admin import AdminDenied
from proxy.config import PERMISSIONS
from proxy.context import Principal
from proxy.runtime.admin.guard import CHALLENGE, IDENTITY, PUBLIC, identify, requires
from proxy.runtime.admin.probes import ADMIN_DEPS, readiness_report
from proxy.runtime.admin.recent import RecentCallsUnavailableError
from proxy.runtime.admin.summary import metric_totals, recent_summary
from proxy.tools.guard import ToolPins

MAX_CALLS = 500
SUMMARY_EVENTS = 10_000  # the newest events the overview's figures are computed from


def _page() -> tuple[str, str]:
    """The page with its style and script inlined, and a Content-Security-Policy that lets only that script run."""
    files = resources.files("proxy.runtime.admin") / "console"
    script = (files / "console.js").read_text()
    page = (files / "index.html").read_text().replace("/*STYLE*/", (files / "console.css").read_text()) \
        .replace("/*SCRIPT*/", script)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; connect-src 'self'; "
           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return page, csp


PAGE = web.AppKey("console_page", tuple[str, str])
VisibleTools = Callable[[Principal, list[dict[str, Any]]], Awaitable[frozenset[str]]]
VISIBLE_TOOLS = web.AppKey("visible_tools", VisibleTools)


async def console_page(request: web.Request) -> web.Response:
    try:
        await identify(request)
        status, headers = 200, {}
    except AdminDenied as error:
        status, headers = error.status, dict(CHALLENGE) if error.status == 401 else {}
    page, csp = request.app[PAGE]
    headers.update({"Content-Security-Policy": csp, "Cache-Control": "no-store", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "no-referrer"})
    return web.Response(text=page, status=status, content_type="text/html", headers=headers)


async def whoami(request: web.Request) -> web.Response:
    identity = request[IDENTITY]
    return web.json_response({"name": identity.name, "permission": identity.permission,
                              "can": [p for p in PERMISSIONS if identity.allows(p)]})


async def overview(request: web.Request) -> web.Response:
    deps = request.app[ADMIN_DEPS]
    ready, checks = await readiness_report(deps)
    ring = deps.audit.ring if deps.audit is not None else None
    reader = deps.telemetry.prometheus
    try:
        recent = recent_summary(await ring.recent({}, SUMMARY_EVENTS), time.time()) if ring is not None else None
    except RecentCallsUnavailableError:
        recent = None
    return web.json_response({
        "ready": ready, "checks": checks, "upstream": {"name": deps.config.upstream.name,
                                                       "kind": deps.config.upstream.kind},
        "recent": recent,
        "metrics": metric_totals(await asyncio.to_thread(reader.render)) if reader is not None else None,
    })


async def recent_calls(request: web.Request) -> web.Response:
    deps = request.app[ADMIN_DEPS]
    if deps.audit is None or deps.audit.ring is None:
        return web.json_response({"calls": [], "note": "recent calls need audit.enabled and admin.recent_calls"})
    filters = {key: request.query.get(key) or None for key in ("principal", "tool", "outcome")}
    try:
        limit = min(MAX_CALLS, max(1, int(request.query.get("limit", "100"))))
    except ValueError:
        return web.json_response({"error": "limit must be a number"}, status=400)
    try:
        calls = await deps.audit.ring.recent(filters, limit)
    except RecentCallsUnavailableError as error:
        return web.json_response({"calls": [], "error": str(error)}, status=503)
    return web.json_response({"calls": calls})


async def tools(request: web.Request) -> web.Response:
    catalog = await request.app[ADMIN_DEPS].catalog.all()
    if catalog is None:
        return web.json_response({"tools": None, "error": "the upstream did not list its tools"}, status=503)
    ordered = sorted(catalog.values(), key=lambda info: info.name)
    visible = await _visible_per_role(request, [info.definition for info in ordered])
    pins = request.app[ADMIN_DEPS].pins
    listed: list[dict[str, Any]] = [
        {"name": info.name, "description": info.definition.get("description"), "annotations": info.annotations,
         "hash": info.hash, "pin": _pin(pins, info.definition) if pins is not None else None,
         "roles": {role: info.name in names for role, names in visible.items()} if visible is not None else None}
        for info in ordered]
    return web.json_response({"tools": listed, "roles": list(visible) if visible is not None else None,
                              "pinned": pins is not None})


def _pin(pins: ToolPins, definition: dict[str, Any]) -> dict[str, str]:
    """The tool against the reviewed lock (tools.lock_file): pinned, or how it drifted; the findings are in
    /tools/report."""
    drift = pins.judge(definition)
    return {"status": "pinned", "summary": "as reviewed"} if drift is None else \
        {"status": drift.status.value, "summary": drift.summary()}


async def _visible_per_role(request: web.Request, tools: list[dict[str, Any]]) -> dict[str, frozenset[str]] | None:
    """For each of admin.console_roles, the tools policy shows a caller holding only that role; None without
    policy or roles."""
    check = request.app.get(VISIBLE_TOOLS)
    config = request.app[ADMIN_DEPS].config
    if check is None or not config.admin.console_roles:
        return None
    issuer = config.auth.issuers[0] if config.auth.issuers else None
    return {role: await check(Principal(f"console:{role}", issuer, roles=frozenset({role})), tools)
            for role in config.admin.console_roles}


def add_routes(app: web.Application) -> None:
    app[PAGE] = _page()
    app.router.add_get("/console", requires(PUBLIC, console_page))
    app.router.add_get("/console/api/me", requires("viewer", whoami))
    app.router.add_get("/console/api/overview", requires("viewer", overview))
    app.router.add_get("/console/api/calls", requires("viewer", recent_calls))
    app.router.add_get("/console/api/tools", requires("viewer", tools))
