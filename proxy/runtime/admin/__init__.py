"""The admin listener: probes, metrics, cache control, approvals and the console, behind admin authentication.

Permissions, each including the one before: `viewer` reads, `approver` decides approvals, `admin` purges the cache.
`/healthz`, `/readyz` and one-time approval links are open; `/metrics` too unless `admin.metrics_require_auth`.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from proxy.auth.admin import AdminAuth
from proxy.runtime.admin import approvals, console, probes
from proxy.runtime.admin.guard import ADMIN_AUTH, PUBLIC, guard, requires
from proxy.runtime.admin.probes import ADMIN_DEPS
from proxy.stages.deps import Deps

__all__ = ["ADMIN_DEPS", "create_admin_app"]
log = structlog.get_logger("proxy.admin")


def create_admin_app(deps: Deps, visible_tools: console.VisibleTools | None = None) -> web.Application:
    """`visible_tools` is the policy stage's view of what a principal may see (None without a policy)."""
    settings = deps.config.admin
    app = web.Application(middlewares=[guard])
    app[ADMIN_DEPS] = deps
    if visible_tools is not None:
        app[console.VISIBLE_TOOLS] = visible_tools
    if settings.auth is not None:
        verifier = deps.authenticator.verifier if deps.authenticator is not None else None
        if settings.auth.jwt and verifier is None:  # fail closed: no keys to verify with, so no JWT is accepted
            log.warning("admin.jwt_without_auth", detail="admin.auth.jwt is set but auth.mode is off")
        app[ADMIN_AUTH] = AdminAuth(settings.auth, verifier)
    add = app.router
    add.add_get("/healthz", requires(PUBLIC, probes.healthz))
    add.add_get("/readyz", requires(PUBLIC, probes.readyz))
    add.add_get("/metrics", requires("viewer" if settings.metrics_require_auth else PUBLIC, probes.metrics))
    add.add_get("/cache/stats", requires("viewer", probes.cache_stats))
    add.add_post("/cache/purge", requires("admin", probes.cache_purge))
    add.add_get("/tools/report", requires("viewer", probes.report))
    add.add_get("/approvals", requires("viewer", approvals.list_approvals))
    add.add_get(r"/approvals/link/{token}", requires(PUBLIC, approvals.link_page))
    add.add_post(r"/approvals/link/{token}", requires(PUBLIC, approvals.link_decide))
    add.add_get(r"/approvals/{id}", requires("viewer", approvals.show_approval))
    add.add_post(r"/approvals/{id}/{verdict:approve|deny}", requires("approver", approvals.decide_approval))
    if settings.console:
        console.add_routes(app)
    return app
