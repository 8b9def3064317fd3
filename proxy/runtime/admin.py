"""The admin listener: liveness, readiness (every registered check), and room for metrics and control."""

from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.errors import ApprovalUnavailableError
from proxy.runtime.admin_report import tools_report
from proxy.stages.deps import Deps
from proxy.telemetry.export.prometheus import CONTENT_TYPE

ADMIN_DEPS = web.AppKey("admin_deps", Deps)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    names, checks = zip(*request.app[ADMIN_DEPS].readiness, strict=True)
    results = await asyncio.gather(*(check() for check in checks), return_exceptions=True)
    report: dict[str, dict[str, object]] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            report[name] = {"ok": False, "detail": f"check failed: {result.__class__.__name__}"}
        else:
            ok, detail = result
            report[name] = {"ok": ok, "detail": detail}
    ready = all(item["ok"] for item in report.values())
    return web.json_response({"ready": ready, "checks": report}, status=200 if ready else 503)


async def cache_purge(request: web.Request) -> web.Response:
    """POST /cache/purge[?tool=NAME]: drop one tool's cached results, or every entry."""
    cache = request.app[ADMIN_DEPS].cache
    if cache is None:
        return web.json_response({"error": "caching is disabled"}, status=404)
    done, generation = await cache.purge(request.query.get("tool") or None)
    return web.json_response({"purged": generation}, status=200 if done else 503)


async def cache_stats(request: web.Request) -> web.Response:
    cache = request.app[ADMIN_DEPS].cache
    if cache is None:
        return web.json_response({"error": "caching is disabled"}, status=404)
    return web.json_response(cache.stats())
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text of the sidecar's OTel metrics (404 when telemetry or telemetry.prometheus is off)."""
    reader = request.app[ADMIN_DEPS].telemetry.prometheus
    if reader is None:
        raise web.HTTPNotFound(text="metrics are disabled (telemetry.enabled / telemetry.prometheus)")
    # Off the event loop: collecting takes a while with many series, and with workers it reads and writes files.
    return web.Response(body=await asyncio.to_thread(reader.render), headers={"Content-Type": CONTENT_TYPE})


async def list_approvals(request: web.Request) -> web.Response:
    try:
        pending = await request.app[ADMIN_DEPS].approvals.pending()
    except ApprovalUnavailableError as error:
        return web.json_response({"error": error.message}, status=503)
    return web.json_response({"pending": pending})


async def decide_approval(request: web.Request) -> web.Response:
    approved = request.match_info["verdict"] == "approve"
    note = ""
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        note = str(body.get("note", "")) if isinstance(body, dict) else ""
    try:
        decided = await request.app[ADMIN_DEPS].approvals.decide(request.match_info["id"], approved, note)
    except ApprovalUnavailableError as error:
        return web.json_response({"error": error.message}, status=503)
    if not decided:
        return web.json_response({"error": "no such pending approval"}, status=404)
    return web.json_response({"id": request.match_info["id"], "approved": approved})


async def report(request: web.Request) -> web.Response:
    """GET /tools/report?format=json|markdown|sarif|html: the security report of the sidecar's view of the tools."""
    return await tools_report(request, request.app[ADMIN_DEPS])


def create_admin_app(deps: Deps) -> web.Application:
    app = web.Application()
    app[ADMIN_DEPS] = deps
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/cache/purge", cache_purge)
    app.router.add_get("/cache/stats", cache_stats)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/approvals", list_approvals)
    app.router.add_post(r"/approvals/{id}/{verdict:approve|deny}", decide_approval)
    app.router.add_get("/tools/report", report)
    return app
