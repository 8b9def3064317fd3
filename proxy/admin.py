"""The admin listener: liveness, readiness (every registered check), and room for metrics and control."""

from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.pipeline import Deps

ADMIN_DEPS = web.AppKey("admin_deps", Deps)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[ADMIN_DEPS].readiness_checks
    names = list(checks)
    results = await asyncio.gather(*(checks[name]() for name in names), return_exceptions=True)
    report: dict[str, dict[str, object]] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            report[name] = {"ok": False, "detail": f"check failed: {result.__class__.__name__}"}
        else:
            ok, detail = result
            report[name] = {"ok": ok, "detail": detail}
    ready = all(item["ok"] for item in report.values())
    return web.json_response({"ready": ready, "checks": report}, status=200 if ready else 503)


async def list_approvals(request: web.Request) -> web.Response:
    return web.json_response({"pending": request.app[ADMIN_DEPS].approvals.pending()})


async def decide_approval(request: web.Request) -> web.Response:
    approved = request.match_info["verdict"] == "approve"
    note = ""
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        note = str(body.get("note", "")) if isinstance(body, dict) else ""
    if not request.app[ADMIN_DEPS].approvals.decide(request.match_info["id"], approved, note):
        return web.json_response({"error": "no such pending approval"}, status=404)
    return web.json_response({"id": request.match_info["id"], "approved": approved})


def create_admin_app(deps: Deps) -> web.Application:
    app = web.Application()
    app[ADMIN_DEPS] = deps
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/approvals", list_approvals)
    app.router.add_post(r"/approvals/{id}/{verdict:approve|deny}", decide_approval)
    return app
