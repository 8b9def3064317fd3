"""The aiohttp applications: the MCP listener and the admin listener, with every resource in cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from proxy.admin import create_admin_app
from proxy.approval import ApprovalBook
from proxy.catalog import ToolCatalog
from proxy.config import Config
from proxy.context import CallContext
from proxy.errors import ProxyError
from proxy.pipeline import Deps, Handler, Lifecycle, Stage, build_chain
from proxy.reply import Reply
from proxy.stages import build_stages
from proxy.telemetry import TRACED_KINDS, Telemetry
from proxy.transport import oauth_metadata, sse
from proxy.transport.streamable_http import StreamableHttpHandler
from proxy.upstream import Upstream, create_upstream

DEPS = web.AppKey("deps", Deps)
STAGES = web.AppKey("stages", list)


def create_app(config: Config, upstream: Upstream | None = None) -> web.Application:
    upstream = upstream if upstream is not None else create_upstream(config)
    catalog = ToolCatalog(upstream, ttl_seconds=config.upstream.catalog_ttl_seconds)
    approvals = ApprovalBook(max_pending=config.approval.max_pending)
    deps = Deps(config=config, upstream=upstream, catalog=catalog, approvals=approvals,
                telemetry=Telemetry.from_config(config))
    deps.readiness_checks["upstream"] = upstream.readiness
    upstream.on_restart(lambda: deps.metrics.count("upstream_restarts"))
    stages = build_stages(config, deps)
    chain = build_chain(stages, forward_to(upstream, deps.telemetry, catalog))
    handler = StreamableHttpHandler(config.server, chain)
    auth = next((stage for stage in stages if stage.name == "auth"), None)
    legacy_sse = sse.LegacySseHandler(config.server, chain, config.upstream.queue_limit, config.upstream.max_sessions,
                                      authenticate=getattr(auth, "principal_of", None))

    app = web.Application(client_max_size=config.server.max_body_bytes + 1)
    path = config.server.mcp_path
    app.router.add_post(path, handler.post)
    app.router.add_get(path, handler.get, allow_head=False)
    app.router.add_delete(path, handler.delete)
    oauth_metadata.add_routes(app, config)
    app.router.add_get(sse.SSE_PATH, legacy_sse.stream, allow_head=False)  # 2024-11-05 clients
    app.router.add_post(sse.MESSAGES_PATH, legacy_sse.post)
    app.on_shutdown.append(legacy_sse.shutdown)
    app[DEPS] = deps
    app[STAGES] = stages
    app.cleanup_ctx.append(_resources(upstream, stages, deps.telemetry))
    return app


def create_apps(config: Config, upstream: Upstream | None = None) -> tuple[web.Application, web.Application]:
    """The MCP app and its admin app, sharing one set of dependencies."""
    app = create_app(config, upstream)
    return app, create_admin_app(app[DEPS])


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


def _resources(upstream: Upstream, stages: Sequence[Stage], telemetry: Telemetry):
    lifecycles = [stage for stage in stages if isinstance(stage, Lifecycle)]

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        await upstream.start()
        started: list[Lifecycle] = []
        try:
            for item in lifecycles:
                await item.start()
                started.append(item)
            yield
        finally:
            for item in reversed(started):
                await item.close()
            await upstream.close()
            await telemetry.shutdown()  # last: spans of the calls drained above are flushed too

    return lifespan
