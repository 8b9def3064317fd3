"""Running the sidecar: both listeners, signal handling, a graceful drain on SIGTERM, and N worker processes.

With `server.workers: N` (N > 1) a parent process forks N workers that all listen on the same ports
(SO_REUSEPORT: the kernel spreads connections across them), restarts one that dies, forwards SIGTERM/SIGINT to
all, and exits 0 once every worker has drained. Shared state (rate limits, cache) must then live in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import signal
import ssl
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import structlog
from aiohttp import web

from proxy.config import Config, parse_host_port
from proxy.net.listener import HttpServer
from proxy.net.listener.server import MAX_CONNECTIONS
from proxy.net.tls import ServerTls
from proxy.runtime.app import McpApp, create_apps
from proxy.telemetry.export import worker_metrics

log = structlog.get_logger("proxy.server")


@contextlib.asynccontextmanager
async def running(config: Config, grace_seconds: float | None = None) -> AsyncIterator[tuple[McpApp, web.Application]]:
    """Both listeners up, on their resources; on exit: stop accepting, end the legacy SSE streams, let calls in
    flight finish within the grace period, then close everything."""
    grace = config.server.shutdown_grace_seconds if grace_seconds is None else grace_seconds
    reuse_port = config.server.workers > 1
    app, admin = create_apps(config)
    async with app.running():
        listener = HttpServer(app.routes, max_body_bytes=config.server.max_body_bytes,
                              max_connections=connection_limit(config.server.max_connections),
                              request_head_timeout=config.server.request_head_timeout_seconds,
                              request_body_timeout=config.server.request_body_timeout_seconds,
                              count=app.deps.metrics.count, tls=listening_tls(config))
        admin_runner = web.AppRunner(admin, shutdown_timeout=1, access_log=None)
        await admin_runner.setup()
        try:
            await _listen_on(config.server.listen,
                             lambda host, port: listener.listen(host, port, reuse_port=reuse_port))
            await _listen_on(config.server.admin_listen, lambda host, port: web.TCPSite(
                admin_runner, host, port, reuse_port=reuse_port or None).start())
            yield app, admin
        finally:
            listener.stop_accepting()
            await app.legacy_sse.shutdown()  # long-lived streams would hold the drain for the whole grace period
            await listener.drain(grace)
            await admin_runner.cleanup()


def listening_tls(config: Config) -> ssl.SSLContext | None:
    """The MCP listener's TLS context, or None for plain HTTP. Each worker builds its own, and watches the files."""
    tls = config.server.tls
    return None if tls is None else ServerTls(tls.cert_file, tls.key_file, tls.client_ca_file).listening


def connection_limit(configured: int | None) -> int:
    """The configured limit, or what the process's open-file limit leaves room for (at most MAX_CONNECTIONS)."""
    if configured is not None:
        return configured
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft - 256))


class ListenError(OSError):
    """A listening address could not be bound (in use, not this host's, a privileged port)."""


async def _listen_on(address: str, start: Callable[[str, int], Awaitable[None]]) -> None:
    host, port = parse_host_port(address)
    try:
        await start(host, port)
    except OSError as exc:
        raise ListenError(f"cannot listen on {address}: {exc.strerror or exc}") from None


async def serve(config: Config, started: asyncio.Event | None = None) -> None:
    """Listen until SIGTERM/SIGINT, then drain gracefully (see `running`)."""
    async with running(config):
        _tune_collector()
        log.info("sidecar.listening", listen=config.server.listen, admin=config.server.admin_listen,
                 upstream=config.upstream.name)
        if started is not None:
            started.set()
        await _until_signalled()
        log.info("sidecar.stopping", grace_seconds=config.server.shutdown_grace_seconds)
    log.info("sidecar.stopped")


# Young collections after this many net allocations of tracked objects, not CPython's 700: a call's objects die by
# reference counting, so a young collection mostly walks the calls in flight, over and over. Cyclic garbage waits
# a little longer for it: a few MB at most.
YOUNG_COLLECTION_THRESHOLD = 7_000


def _tune_collector() -> None:
    """What startup built (modules, config, policy, telemetry: about 90k objects with the full pipeline) lives as
    long as the process: frozen out of the collector's sight, a full collection no longer walks it. Measured on the
    sidecar process (full pipeline, 32 clients, py-spy): 1.2% of its samples were in the collector, among them one
    full collection of about 120 ms in 7 s, a pause in every call it caught; with both settings, none."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


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


def run(config: Config) -> int:
    """Serve until signalled; the process exit code."""
    if config.server.workers > 1:
        _preflight(config)  # a policy that cannot load stops every worker: say so once, as exit 2
        for warning in per_worker_state(config):
            log.warning("workers.state_not_shared", detail=warning, workers=config.server.workers)
        with _shared_metrics(config) as worker_config:
            return supervise(worker_config)
    _serve_forever(config)
    return 0


@contextlib.contextmanager
def _shared_metrics(config: Config) -> Iterator[Config]:
    """The workers' config, with the directory where they share their metrics (telemetry/export/worker_metrics.py):
    the configured one, emptied of an earlier run's files, or a temporary one removed when the last worker is gone."""
    telemetry = config.telemetry
    if not (telemetry.enabled and telemetry.prometheus):
        yield config
    elif telemetry.worker_metrics_dir:
        directory = Path(telemetry.worker_metrics_dir)
        directory.mkdir(parents=True, exist_ok=True)
        worker_metrics.clear(directory)
        yield config
    else:
        with tempfile.TemporaryDirectory(prefix="mcp-sidecar-metrics-") as directory:
            yield config.model_copy(
                update={"telemetry": telemetry.model_copy(update={"worker_metrics_dir": directory})})


def per_worker_state(config: Config) -> list[str]:
    """What each worker keeps for itself that a deployment may expect to be shared, said once at startup."""
    found = []
    if config.rate_limits.buckets and config.rate_limits.backend == "memory":
        found.append("rate limits count per worker (rate_limits.backend: memory): a caller whose connections reach "
                     "several workers gets up to that many times each limit; use rate_limits.backend: redis")
    if config.approval.backend == "memory" and config.policy.engine != "off":
        found.append("approvals are kept per worker (approval.backend: memory): a call waits in one worker and only "
                     "that worker's admin listener lists it; use approval.backend: redis")
    if config.upstream.kind != "http":
        found.append("each worker spawns or connects its own upstream and holds its own 2025 sessions: a client "
                     "whose next connection reaches another worker loses its session; run one worker")
    return found


def _preflight(config: Config) -> None:
    """What stops every worker is said once, before forking: a policy or a tools lock that does not load."""
    from proxy.runtime.app import load_pins

    load_pins(config)
    if config.policy.engine == "rego":
        from proxy.policy.factory import build_engine

        build_engine(config.policy, Path(config.policy.directory), label="preflight")


def _serve_forever(config: Config) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))


# A worker that dies sooner than this after its start is failing to start (a bad port, say): stop, do not loop.
MIN_WORKER_UPTIME_SECONDS = 2.0


def supervise(config: Config) -> int:
    """Fork the workers, keep their number up, forward stop signals; 0 when all drained cleanly."""
    workers = {_fork_worker(config, slot): (slot, time.monotonic()) for slot in range(config.server.workers)}
    state = {"stopping": False, "failed": False}

    def stop_all(signum: int, _frame: object = None) -> None:
        state["stopping"] = True
        for pid in list(workers):
            _signal(pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, stop_all) for signum in (signal.SIGTERM, signal.SIGINT)}
    log.info("sidecar.supervising", workers=sorted(workers))
    try:
        while workers:
            pid, status = os.wait()
            if pid not in workers:
                continue
            slot, started = workers.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if state["stopping"]:
                state["failed"] |= code != 0
            elif time.monotonic() - started < MIN_WORKER_UPTIME_SECONDS:
                log.error("worker.failed_to_start", worker=slot, pid=pid, exit_code=code)
                state["failed"] = True
                stop_all(signal.SIGTERM)
            else:
                log.warning("worker.died", worker=slot, pid=pid, exit_code=code)
                workers[_fork_worker(config, slot)] = (slot, time.monotonic())
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("sidecar.workers_stopped", clean=not state["failed"])
    return 1 if state["failed"] else 0


def _fork_worker(config: Config, slot: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:  # the child: its own event loop, its own connections; it never returns into the parent's code
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        structlog.contextvars.bind_contextvars(worker=slot)
        _serve_forever(config)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
