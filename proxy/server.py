"""Running the sidecar: both listeners, signal handling, and a graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from proxy.app import create_apps
from proxy.config import Config, parse_host_port

log = structlog.get_logger("proxy.server")


async def serve(config: Config, started: asyncio.Event | None = None) -> None:
    """Listen until SIGTERM/SIGINT, then stop accepting, let calls in flight finish, and close everything."""
    app, admin = create_apps(config)
    grace = config.server.shutdown_grace_seconds
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=grace, access_log=None)
    admin_runner = web.AppRunner(admin, shutdown_timeout=1, access_log=None)
    await runner.setup()
    await admin_runner.setup()
    try:
        await _listen(runner, config.server.listen, reuse_port=config.server.workers > 1)
        await _listen(admin_runner, config.server.admin_listen, reuse_port=config.server.workers > 1)
        log.info("sidecar.listening", listen=config.server.listen, admin=config.server.admin_listen,
                 upstream=config.upstream.name)
        if started is not None:
            started.set()
        await _until_signalled()
        log.info("sidecar.stopping", grace_seconds=grace)
    finally:
        await admin_runner.cleanup()
        await runner.cleanup()
        log.info("sidecar.stopped")


async def _listen(runner: web.AppRunner, address: str, reuse_port: bool) -> None:
    host, port = parse_host_port(address)
    await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run(config: Config) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
