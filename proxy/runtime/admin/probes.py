"""The admin listener's probes and controls: liveness, readiness (every registered check), metrics, the cache."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from proxy.runtime.admin.guard import IDENTITY
from proxy.runtime.admin_report import tools_report
from proxy.stages.deps import Deps
from proxy.telemetry.export.prometheus import CONTENT_TYPE

ADMIN_DEPS = web.AppKey("admin_deps", Deps)
log = structlog.get_logger("proxy.admin")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready, report = await readiness_report(request.app[ADMIN_DEPS])
    return web.json_response({"ready": ready, "checks": report}, status=200 if ready else 503)


async def readiness_report(deps: Deps) -> tuple[bool, dict[str, dict[str, object]]]:
    names, checks = zip(*deps.readiness, strict=True)
    results = await asyncio.gather(*(check() for check in checks), return_exceptions=True)
    report: dict[str, dict[str, object]] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            report[name] = {"ok": False, "detail": f"check failed: {result.__class__.__name__}"}
        else:
            ok, detail = result
            report[name] = {"ok": ok, "detail": detail}
    return all(item["ok"] for item in report.values()), report


async def cache_purge(request: web.Request) -> web.Response:
    """POST /cache/purge[?tool=NAME]: drop one tool's cached results, or every entry."""
    cache = request.app[ADMIN_DEPS].cache
    if cache is None:
        return web.json_response({"error": "caching is disabled"}, status=404)
    tool = request.query.get("tool") or None
    done, generation = await cache.purge(tool)
    log.info("admin.cache_purged", who=request[IDENTITY].name, tool=tool, done=done)
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


async def report(request: web.Request) -> web.Response:
    """GET /tools/report?format=json|markdown|sarif|html: the security report of the sidecar's view of the tools."""
    return await tools_report(request, request.app[ADMIN_DEPS])
