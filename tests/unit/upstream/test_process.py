"""A child's stdout framing: a line over the limit is skipped whole, its first and last bytes kept."""

from __future__ import annotations

import asyncio

from proxy.upstream.process import EDGE_BYTES, ChildProcess, ProcessSpec


class Received:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.oversized: list[tuple[bytes, bytes]] = []

    def feed(self, line: bytes) -> None:
        self.lines.append(line)

    def feed_oversized(self, head: bytes, tail: bytes) -> None:
        self.oversized.append((head, tail))


async def read_all(data: bytes, limit: int, chunk: int = 1000) -> Received:
    stdout = asyncio.StreamReader(limit=limit)
    received = Received()
    reader = asyncio.create_task(ChildProcess(ProcessSpec(["x"], max_line_bytes=limit), "t")
                                 ._read_stdout(stdout, received))
    for start in range(0, len(data), chunk):  # the way a pipe delivers: in pieces
        stdout.feed_data(data[start:start + chunk])
        await asyncio.sleep(0)
    stdout.feed_eof()
    async with asyncio.timeout(5):
        await reader
    return received


async def test_an_over_long_line_is_reported_by_its_edges_and_the_next_line_is_intact() -> None:
    long_line = b'{"id":1,"result":"' + b"x" * 50_000 + b'","end":true}'
    received = await read_all(b'{"a":1}\n' + long_line + b'\n{"b":2}\n{"c":3}', limit=4096)
    assert received.lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}']  # the last, unterminated line too
    [(head, tail)] = received.oversized
    assert head == long_line[:EDGE_BYTES] and tail == long_line[-EDGE_BYTES:]


async def test_lines_just_under_the_limit_pass_whole() -> None:
    line = b"y" * 4000
    received = await read_all(line + b"\n" + line + b"\n", limit=4096, chunk=4096)
    assert received.lines == [line, line] and received.oversized == []
