"""StreamHeartbeat: idle streams get `: keepalive` comments; busy, finished or full ones do not; it stops cleanly."""

from __future__ import annotations

import asyncio
import time

from proxy.net.listener import ResponseStream
from proxy.net.listener.messages import chunk
from proxy.transport.heartbeat import COMMENT, StreamHeartbeat
from tests.kit import wait_until

INTERVAL = 0.06


class Wire:
    def __init__(self, room: bool = True, broken: bool = False) -> None:
        self.sent: list[bytes] = []
        self.room, self.broken = room, broken

    async def send(self, data: bytes) -> None:
        self.sent.append(data)

    def send_now(self, data: bytes) -> bool:
        if self.broken:
            raise ConnectionResetError("gone")
        if self.room:
            self.sent.append(data)
        return self.room

    def stream(self) -> ResponseStream:
        stream = ResponseStream(self.send, lambda: None, send_now=self.send_now)
        stream.last_write = time.monotonic() - 10  # idle for a while already
        return stream


def test_the_comment_is_an_sse_comment() -> None:
    assert COMMENT.startswith(b":") and COMMENT.endswith(b"\n\n")


async def test_an_idle_stream_gets_keepalives_while_watched() -> None:
    heartbeat, wire = StreamHeartbeat(INTERVAL), Wire()
    with heartbeat.watching(wire.stream()):
        assert heartbeat.open_streams == 1
        await wait_until(lambda: heartbeat.sent >= 2, timeout=3)
    assert heartbeat.open_streams == 0
    assert wire.sent[0] == chunk(COMMENT)
    heartbeat.close()


async def test_a_stream_that_writes_gets_no_keepalive() -> None:
    heartbeat = StreamHeartbeat(0.3)  # far above the busy stream's pace, so a stalled loop does not make it idle
    idle_wire, busy_wire = Wire(), Wire()
    busy = busy_wire.stream()
    with heartbeat.watching(idle_wire.stream()), heartbeat.watching(busy):
        async with asyncio.timeout(3):
            while heartbeat.sent < 2:
                await busy.write(b"data: x\n\n")  # keeps its last_write fresh
                await asyncio.sleep(0.01)
    assert all(data != chunk(COMMENT) for data in busy_wire.sent)
    heartbeat.close()


async def test_full_and_broken_streams_are_skipped_and_do_not_stop_the_others() -> None:
    heartbeat = StreamHeartbeat(INTERVAL)
    full, broken, fine = Wire(room=False), Wire(broken=True), Wire()
    with heartbeat.watching(full.stream()), heartbeat.watching(broken.stream()), heartbeat.watching(fine.stream()):
        await wait_until(lambda: len(fine.sent) >= 2, timeout=3)
    assert full.sent == [] and broken.sent == []
    assert heartbeat.sent == len(fine.sent)  # only written keepalives count
    heartbeat.close()


async def test_zero_interval_watches_nothing() -> None:
    heartbeat = StreamHeartbeat(0)
    with heartbeat.watching(Wire().stream()):
        assert heartbeat.open_streams == 0 and heartbeat._sweeper is None


async def test_the_sweep_ends_when_the_last_stream_leaves_and_restarts_for_the_next() -> None:
    heartbeat = StreamHeartbeat(INTERVAL)
    with heartbeat.watching(Wire().stream()):
        sweeper = heartbeat._sweeper
        assert sweeper is not None
    await asyncio.wait_for(sweeper, 3)
    assert heartbeat._sweeper is None
    wire = Wire()
    with heartbeat.watching(wire.stream()):
        await wait_until(lambda: wire.sent, timeout=3)
    heartbeat.close()


async def test_after_close_nothing_is_watched_or_sent() -> None:
    heartbeat, wire = StreamHeartbeat(INTERVAL), Wire()
    with heartbeat.watching(wire.stream()):
        sweeper = heartbeat._sweeper
        heartbeat.close()
        assert sweeper is not None
        await asyncio.gather(sweeper, return_exceptions=True)
        assert sweeper.cancelled()
    with heartbeat.watching(wire.stream()):
        assert heartbeat.open_streams == 0 and heartbeat._sweeper is None
    assert wire.sent == []
