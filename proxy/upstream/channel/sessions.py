"""Legacy (2025-era) client sessions: each owns an upstream channel of its own, bounded in number and idle time."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from proxy.config import ChannelSettings
from proxy.errors import SessionLimitError, SessionNotFoundError, UpstreamError
from proxy.upstream.channel.mux import Channel, Multiplexer
from proxy.upstream.channel.supervisor import ChannelFactory, with_output

log = structlog.get_logger("proxy.upstream.sessions")


@dataclass(eq=False, slots=True)
class Session:
    id: str
    channel: Channel
    mux: Multiplexer
    last_used: float
    watcher: asyncio.Task[None] | None = field(default=None)


class SessionTable:
    def __init__(self, factory: ChannelFactory, config: ChannelSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.factory = factory
        self.config = config
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._opening = 0
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever())

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        await asyncio.gather(*(self.end(session_id, "sidecar stopping") for session_id in list(self._sessions)))

    async def open(self) -> Session:
        """A new session with a fresh channel, for a client's initialize."""
        if len(self._sessions) + self._opening >= self.config.max_sessions:
            log.warning("upstream.session_limit", max_sessions=self.config.max_sessions)
            raise SessionLimitError(f"Too many sessions: the sidecar allows {self.config.max_sessions} at once; "
                                      "end one (DELETE) or retry later")
        session_id = secrets.token_hex(16)
        channel = self.factory(f"session-{session_id[:8]}")
        mux = Multiplexer(channel, self.config.queue_limit, sessionful=True)
        self._opening += 1
        try:
            async with asyncio.timeout(self.config.startup_timeout_seconds):
                await channel.open(mux)
        except (UpstreamError, TimeoutError) as exc:
            await asyncio.shield(channel.close())
            reason = exc.message if isinstance(exc, UpstreamError) else \
                f"timed out after {self.config.startup_timeout_seconds:g}s starting the process"
            raise UpstreamError("Could not start the upstream MCP server for a session: "
                                + with_output(reason, channel)) from None
        finally:
            self._opening -= 1
        session = Session(session_id, channel, mux, self.clock())
        self._sessions[session_id] = session
        session.watcher = asyncio.create_task(self._watch(session))
        log.info("upstream.session_opened", session=session_id[:8], sessions=len(self._sessions))
        return session

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFoundError("Session not found")
        session.last_used = self.clock()
        return session

    async def end(self, session_id: str, reason: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        log.info("upstream.session_closed", session=session_id[:8], reason=reason, sessions=len(self._sessions))
        session.mux.fail_all(UpstreamError(f"The session ended ({reason})"))
        if session.watcher is not None and session.watcher is not asyncio.current_task():
            session.watcher.cancel()
        await asyncio.shield(session.channel.close())

    async def reap_idle(self) -> None:
        now = self.clock()
        idle = [session.id for session in self._sessions.values()
                if session.mux.in_flight == 0 and now - session.last_used > self.config.session_idle_seconds]
        for session_id in idle:
            await self.end(session_id, "idle")

    async def _reap_forever(self) -> None:
        interval = min(self.config.session_idle_seconds / 2, 5.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap_idle()
            except Exception:
                log.exception("upstream.reap_failed")

    async def _watch(self, session: Session) -> None:
        reason = with_output(await session.channel.wait_closed(), session.channel)
        if self._sessions.get(session.id) is session:
            log.warning("upstream.session_channel_ended", session=session.id[:8], reason=reason)
            await self.end(session.id, f"upstream ended: {reason}")
