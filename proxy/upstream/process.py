"""One spawned stdio MCP server: newline-delimited JSON on stdin/stdout, stderr into the logs, a bounded shutdown.

The child gets a minimal environment (never the sidecar's own), runs in its own process group so the whole tree
can be signalled, and is always reaped. Its end is the child's own exit, not the end of its pipes: a process it
started may hold those open long after it is gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
from asyncio.subprocess import Process, SubprocessStreamProtocol
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from proxy.errors import UpstreamError
from proxy.upstream.channel.mux import Receiver

log = structlog.get_logger("proxy.upstream.stdio")

# What a child inherits from the sidecar's environment; everything else (tokens, keys) stays behind.
INHERITED_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "TZ", "LANG", "LC_ALL",
                       "LC_CTYPE", "SYSTEMROOT")
MAX_STDERR_LOG_CHARS = 4096
STDERR_LINES_KEPT = 5  # the last few stderr lines, for the reason a child failed
PIPE_DRAIN_SECONDS = 0.1  # after the child exited: what it wrote last, still in the pipes, is read this long
EDGE_BYTES = 1024  # of an over-long line, its first and last bytes are kept: they name the call it answers


def child_environment(extra: Mapping[str, str], parent: Mapping[str, str] | None = None) -> dict[str, str]:
    parent = os.environ if parent is None else parent
    env = {name: parent[name] for name in INHERITED_VARIABLES if name in parent}
    env.update(extra)
    return env


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    max_line_bytes: int = 16 * 1024 * 1024
    shutdown_grace: float = 2.0


class ChildProcess:
    """A Channel (see mux.py) over a child's stdin/stdout."""

    def __init__(self, spec: ProcessSpec, label: str) -> None:
        self.spec = spec
        self.label = label
        self._process: Process | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._exit: asyncio.Future[None] | None = None
        self._stdout: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[None] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self._write_lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def diagnostics(self) -> str:
        return f"its last stderr: {' | '.join(self._stderr_tail)}" if self._stderr_tail else ""

    async def open(self, receiver: Receiver) -> None:
        loop = asyncio.get_running_loop()
        self._exit = exit_seen = loop.create_future()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitWatch(exit_seen, limit=self.spec.max_line_bytes, loop=loop), *self.spec.argv,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=dict(self.spec.env), cwd=self.spec.cwd, start_new_session=True,
            )
        except OSError as exc:
            raise UpstreamError(f"Cannot start the upstream MCP server: {exc.strerror or exc}") from None
        self._transport = transport
        self._process = process = Process(transport, protocol, loop)
        log.info("upstream.process_started", child=self.label, pid=process.pid, argv0=self.spec.argv[0])
        assert process.stdout is not None and process.stderr is not None
        self._stdout = asyncio.create_task(self._read_stdout(process.stdout, receiver))
        self._stderr = asyncio.create_task(self._log_stderr(process.stderr))

    async def send(self, data: bytes) -> None:
        process = self._process
        if process is None or process.stdin is None or process.stdin.is_closing() or process.returncode is not None:
            raise UpstreamError("The upstream MCP server process is not running")
        try:
            async with self._write_lock:
                process.stdin.write(data + b"\n")
                await process.stdin.drain()
        except (ConnectionError, RuntimeError):
            raise UpstreamError("The upstream MCP server process stopped reading its input") from None

    async def wait_closed(self) -> str:
        """Until the child itself has exited (what it wrote just before still delivered); returns how it ended."""
        assert self._process is not None and self._exit is not None
        assert self._stdout is not None and self._stderr is not None
        await asyncio.shield(self._exit)
        await asyncio.wait([self._stdout, self._stderr], timeout=PIPE_DRAIN_SECONDS)
        code = self._process.returncode
        assert code is not None
        ended = f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
        if not self._stdout.done():
            ended += ", its stdout still held open by a process it started"
        return ended

    async def close(self) -> None:
        """Close stdin, wait the grace period, SIGTERM the process group, then SIGKILL it; always reap. What the
        child left running (its process group) gets the same: SIGTERM, the grace period, SIGKILL."""
        process = self._process
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        if not await self._exited_within(self.spec.shutdown_grace):
            _signal_group(process.pid, signal.SIGTERM)
            if not await self._exited_within(self.spec.shutdown_grace):
                _signal_group(process.pid, signal.SIGKILL)
        await self._exited_within(None)
        await self._stop_what_it_left(process.pid)
        if self._transport is not None:
            self._transport.close()  # our ends of the pipes: no other process's hold on them can block us
        for task in (self._stdout, self._stderr):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(task for task in (self._stdout, self._stderr) if task is not None),
                             return_exceptions=True)
        log.info("upstream.process_stopped", child=self.label, pid=process.pid, returncode=process.returncode)

    async def _exited_within(self, seconds: float | None) -> bool:
        assert self._exit is not None
        done, _ = await asyncio.wait([self._exit], timeout=seconds)
        return bool(done)

    async def _stop_what_it_left(self, group: int) -> None:
        """The child is gone; processes of its group may still hold its pipes. They end when the pipes close."""
        pipes = [task for task in (self._stdout, self._stderr) if task is not None and not task.done()]
        if not pipes:
            _signal_group(group, signal.SIGKILL)  # anything left that closed its pipes
            return
        _signal_group(group, signal.SIGTERM)
        await asyncio.wait(pipes, timeout=self.spec.shutdown_grace)
        _signal_group(group, signal.SIGKILL)

    async def _read_stdout(self, stdout: asyncio.StreamReader, receiver: Receiver) -> None:
        while True:
            try:
                line = await stdout.readuntil(b"\n")
            except asyncio.IncompleteReadError as end:  # EOF: a last line without its newline still counts
                if end.partial.strip():
                    receiver.feed(end.partial.strip())
                return
            except asyncio.LimitOverrunError as overrun:
                head, tail, size = await _skip_line(stdout, overrun.consumed)
                log.warning("upstream.message_too_large", child=self.label, limit=self.spec.max_line_bytes,
                            size=size)
                receiver.feed_oversized(head, tail)
                continue
            line = line.strip()
            if line:
                receiver.feed(line)

    async def _log_stderr(self, stderr: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stderr.readline()
            except ValueError:
                continue
            if not line:
                return
            text = line.decode("utf-8", errors="replace").rstrip()
            if text:
                self._stderr_tail.append(text[:MAX_STDERR_LOG_CHARS // STDERR_LINES_KEPT])
                log.info("upstream.stderr", child=self.label, pid=self.pid, line=text[:MAX_STDERR_LOG_CHARS])


class _ExitWatch(SubprocessStreamProtocol):
    """asyncio's own protocol, plus a future set when the child exits: before Python 3.12, Process.wait() returns
    only once every pipe is closed, which a grandchild holding stdout may never do."""

    def __init__(self, exited: asyncio.Future[None], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._exited = exited

    def process_exited(self) -> None:
        super().process_exited()
        if not self._exited.done():
            self._exited.set_result(None)


async def _skip_line(stdout: asyncio.StreamReader, buffered: int) -> tuple[bytes, bytes, int]:
    """Read past a line longer than the reader's limit, keeping only its first and last EDGE_BYTES."""
    head, tail, size = b"", b"", 0
    while True:
        chunk = await stdout.readexactly(buffered)  # what the reader already holds of the line
        head, tail, size = head or chunk[:EDGE_BYTES], _last_bytes(tail, chunk), size + len(chunk)
        try:
            rest = await stdout.readuntil(b"\n")
        except asyncio.LimitOverrunError as overrun:
            buffered = overrun.consumed
            continue
        except asyncio.IncompleteReadError as end:
            rest = end.partial
        rest = rest.rstrip(b"\r\n")
        return head, _last_bytes(tail, rest), size + len(rest)


def _last_bytes(kept: bytes, more: bytes) -> bytes:
    return (kept + more[-EDGE_BYTES:])[-EDGE_BYTES:]


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
