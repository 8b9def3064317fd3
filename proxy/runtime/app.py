"""The sidecar's two applications: the MCP listener's routes with the resources behind them, and the admin app."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from proxy.approval.factory import create_approval_book
from proxy.approval.notifier import WebhookNotifier
from proxy.audit import AuditTrail
from proxy.auth.authenticator import Authenticator
from proxy.cache.controller import ResponseCache
from proxy.catalog import ToolCatalog
from proxy.config import Config
from proxy.context import CallContext
from proxy.errors import ProxyError
from proxy.net.listener import Routes
from proxy.pipeline import Handler, Lifecycle, Stage, build_chain
from proxy.reply import Reply
from proxy.runtime.admin import create_admin_app
from proxy.runtime.admin.recent import create_recent_calls
from proxy.stages import build_stages
from proxy.stages.deps import Deps
from proxy.stages.policy import PolicyStage
from proxy.telemetry.setup import TRACED_KINDS, Telemetry
from proxy.tools.guard import ToolPins
from proxy.transport import oauth_metadata, sse
from proxy.transport.heartbeat import StreamHeartbeat
from proxy.transport.streamable_http import StreamableHttpHandler
from proxy.upstream import Upstream, create_upstream


@dataclass(eq=False)
class McpApp:
    """The MCP listener's routes, and what they need running behind them."""

    deps: Deps
    stages: list[Stage]
    routes: Routes
    legacy_sse: sse.LegacySseHandler
    heartbeat: StreamHeartbeat

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[McpApp]:
        """The upstream and every stage with a lifecycle started; on exit closed in reverse, telemetry last (the
        spans of the calls drained before are flushed too)."""
        shared = (self.deps.approvals, self.deps.authenticator, self.deps.audit, self.deps.cache, self.deps.notifier)
        lifecycles = [*(item for item in shared if item is not None),
                      *(stage for stage in self.stages if isinstance(stage, Lifecycle))]
        await self.deps.upstream.start()
        started: list[Lifecycle] = []
        try:
            for item in lifecycles:
                await item.start()
                started.append(item)
            yield self
        finally:
            self.heartbeat.close()
            for item in reversed(started):
                await item.close()
            await self.deps.upstream.close()
            await self.deps.telemetry.shutdown()


def create_deps(config: Config, upstream: Upstream) -> Deps:
    """The shared objects, each built once from its config section and handed to whoever needs it."""
    telemetry = Telemetry.from_config(config)
    catalog = ToolCatalog(upstream, ttl_seconds=config.upstream.catalog_ttl_seconds)
    deps = Deps(config=config, upstream=upstream, catalog=catalog, approvals=create_approval_book(config.approval),
                telemetry=telemetry,
                authenticator=Authenticator.from_config(config.auth, config.server, time.monotonic),
                audit=AuditTrail.from_config(config.audit, telemetry.metrics.count,
                                             create_recent_calls(config.admin, telemetry.metrics.count)),
                cache=ResponseCache.from_config(config.cache, time.monotonic, config.upstream.name, catalog),
                pins=load_pins(config),
                notifier=WebhookNotifier.from_config(config.approval.webhook, telemetry.metrics.count))
    deps.readiness.add("upstream", upstream.readiness)
    if deps.pins is not None:
        deps.readiness.add("tools_lock", _ready(deps.pins))
    if config.approval.backend == "redis":
        deps.readiness.add("approvals", deps.approvals.readiness)
    if deps.notifier is not None:
        deps.readiness.add("webhook", deps.notifier.readiness)
    if deps.authenticator is not None and deps.authenticator.jwks is not None:
        deps.readiness.add("auth_keys", deps.authenticator.readiness)
    upstream.on_restart(lambda: deps.metrics.count("upstream_restarts"))
    return deps


def load_pins(config: Config) -> ToolPins | None:
    """The reviewed tools lock, when tools.lock_file is set; LockFileError (path and reason) stops startup."""
    if config.tools.lock_file is None:
        return None
    return ToolPins.load(Path(config.tools.lock_file), config.tools.on_drift)


def _ready(pins: ToolPins):
    async def check() -> tuple[bool, str]:
        return pins.readiness()

    return check


def create_app(config: Config, upstream: Upstream | None = None) -> McpApp:
    deps = create_deps(config, upstream if upstream is not None else create_upstream(config))
    stages = build_stages(config, deps)
    chain = build_chain(stages, forward_to(deps.upstream, deps.telemetry, deps.catalog))
    heartbeat = StreamHeartbeat(config.server.stream_keepalive_seconds)
    handler = StreamableHttpHandler(config.server, chain, heartbeat)
    legacy_sse = sse.LegacySseHandler(
        config.server, chain, config.upstream.queue_limit, config.upstream.max_sessions,
        authenticate=deps.authenticator.principal_of if deps.authenticator is not None else None,
        audit_refusal=deps.audit.refused if deps.audit is not None else None, heartbeat=heartbeat)

    routes = Routes()
    path = config.server.mcp_path
    routes.add("POST", path, handler.post)
    routes.add("GET", path, handler.get)
    routes.add("DELETE", path, handler.delete)
    oauth_metadata.add_routes(routes, config)
    routes.add("GET", sse.SSE_PATH, legacy_sse.stream)  # 2024-11-05 clients
    routes.add("POST", sse.MESSAGES_PATH, legacy_sse.post)
    return McpApp(deps=deps, stages=stages, routes=routes, legacy_sse=legacy_sse, heartbeat=heartbeat)


def create_apps(config: Config, upstream: Upstream | None = None) -> tuple[McpApp, web.Application]:
    """The MCP app and its admin app, sharing one set of dependencies."""
    app = create_app(config, upstream)
    policy = next((stage for stage in app.stages if isinstance(stage, PolicyStage)), None)
    return app, create_admin_app(app.deps, policy.visible_tools if policy is not None else None)


def forward_to(upstream: Upstream, telemetry: Telemetry, catalog: ToolCatalog | None = None) -> Handler:
    """The terminal: the upstream call, inside its CLIENT span (which wraps exactly this call and nothing of the
    stages) when tracing is on. The span's context travels upstream in params._meta and the HTTP headers.
    The catalog watches every reply for a changed tool list, whichever stages are on."""

    async def forward(ctx: CallContext) -> Reply:
        reply = await upstream.send(ctx)
        ctx.record.upstream_status = reply.status
        return catalog.watch(reply) if catalog is not None else reply

    if not telemetry.enabled:
        return forward

    async def forward_traced(ctx: CallContext) -> Reply:
        if ctx.kind not in TRACED_KINDS:  # GET streams, DELETE, client responses: no span of their own
            return await forward(ctx)
        call = telemetry.upstream_call(ctx)
        try:
            reply = await upstream.send(call.ctx)
        except ProxyError as error:
            call.failed(error.error_type, error.message)
            raise
        except BaseException as exc:  # cancelled (client went away) or a bug: the span still ends
            call.failed(exc.__class__.__qualname__, str(exc) or None)
            raise
        ctx.record.upstream_status = reply.status
        reply.on_done(call.finished)
        return catalog.watch(reply) if catalog is not None else reply

    return forward_traced
