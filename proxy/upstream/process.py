"""One spawned stdio MCP server: newline-delimited JSON on stdin/stdout, stderr into the logs, a bounded shutdown.

The child gets a minimal environment (never the sidecar's own), runs in its own process group so the whole tree
can be signalled, and is always reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
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
        self._process: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def open(self, receiver: Receiver) -> None:
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.spec.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=dict(self.spec.env), cwd=self.spec.cwd,
                limit=self.spec.max_line_bytes, start_new_session=True,
            )
        except OSError as exc:
            raise UpstreamError(f"Cannot start the upstream MCP server: {exc.strerror or exc}") from None
        log.info("upstream.process_started", child=self.label, pid=self._process.pid, argv0=self.spec.argv[0])
        assert self._process.stdout is not None and self._process.stderr is not None
        self._tasks = [asyncio.create_task(self._read_stdout(self._process.stdout, receiver)),
                       asyncio.create_task(self._log_stderr(self._process.stderr))]

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
        """Until stdout has ended and the process was reaped; returns how it ended."""
        assert self._process is not None
        await asyncio.gather(*self._tasks, return_exceptions=True)
        code = await self._process.wait()
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"

    async def close(self) -> None:
        """Close stdin, wait the grace period, SIGTERM the process group, then SIGKILL it; always reap."""
        process = self._process
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        if not await _exited(process, self.spec.shutdown_grace):
            _signal_group(process.pid, signal.SIGTERM)
            if not await _exited(process, self.spec.shutdown_grace):
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        _signal_group(process.pid, signal.SIGKILL)  # what is left of the tree, if the leader exited alone
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("upstream.process_stopped", child=self.label, pid=process.pid, returncode=process.returncode)

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
                log.info("upstream.stderr", child=self.label, pid=self.pid, line=text[:MAX_STDERR_LOG_CHARS])


async def _exited(process: asyncio.subprocess.Process, within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            await process.wait()
    except TimeoutError:
        return False
    return True


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
