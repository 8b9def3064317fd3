"""Admin authentication as aiohttp glue: each route declares the permission it needs; one middleware checks it.

A handler without a declaration needs `admin`, so a route added without thought is closed, not open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from proxy.auth.admin import OPEN, AdminAuth, AdminDenied, AdminIdentity

log = structlog.get_logger("proxy.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC = "public"
ADMIN_AUTH = web.AppKey("admin_auth", AdminAuth)
IDENTITY = web.RequestKey("admin_identity", AdminIdentity)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mcp-sidecar admin"'}


def requires(permission: str, handler: Handler) -> Handler:
    """`handler` behind `permission` (viewer, approver, admin, or PUBLIC)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    guarded.permission = permission  # type: ignore[attr-defined]
    guarded.__name__ = handler.__name__
    return guarded


async def identify(request: web.Request) -> AdminIdentity:
    """Who calls; raises AdminDenied. Without admin.auth (a loopback listener) everyone is admin."""
    auth = request.app.get(ADMIN_AUTH)
    if auth is None:
        return OPEN
    return await auth.identify(request.headers.get("Authorization"))


def denial(error: AdminDenied) -> web.Response:
    return web.json_response({"error": error.message}, status=error.status,
                             headers=CHALLENGE if error.status == 401 else None)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    needed = getattr(handler, "permission", "admin")
    if needed == PUBLIC:
        return await handler(request)
    try:
        identity = await identify(request)
    except AdminDenied as error:
        log.info("admin.refused", path=request.path, status=error.status, reason=error.message)
        return denial(error)
    if not identity.allows(needed):
        log.info("admin.forbidden", path=request.path, who=identity.name, needed=needed)
        return web.json_response({"error": f"this needs the {needed} permission", "permission": identity.permission},
                                 status=403)
    request[IDENTITY] = identity
    return await handler(request)
