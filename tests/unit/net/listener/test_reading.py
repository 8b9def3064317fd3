"""The listener's reading half on its own (no sockets): whatever the reads a request arrives in, it is parsed the
same, a body past the limit is refused as soon as it passes it, and a deadline runs only while a part arrives."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.net.listener import HttpRequest, HttpResponse, Routes
from proxy.net.listener.reading import NO_DEADLINE, RequestReader

LIMIT = 64


@dataclass
class Owner:
    loop: asyncio.AbstractEventLoop
    routes: Routes = field(default_factory=Routes)
    max_body_bytes: int = LIMIT
    draining: bool = False
    head_deadline: float = 100.0
    body_deadline: float = 200.0

    def admit(self, connection: RequestReader) -> bool:
        return True

    def forget(self, connection: RequestReader) -> None:
        pass

    def count(self, name: str, **attributes: str) -> None:
        pass


class Reader(RequestReader):
    """The reading half with an answering half that only records."""

    def __init__(self, owner: Owner) -> None:
        super().__init__(owner)
        self._answering = None
        self._transport = None
        self._reading_paused = False
        self.accepted: list[tuple[str, bytes, bool, bool]] = []  # target, body, too large, final
        self.refused: list[int] = []

    def _accept(self, request: HttpRequest, final: bool) -> None:
        self.accepted.append((f"{request.method} {request.path}", request.body, request.body_too_large, final))

    def _refuse(self, response: HttpResponse) -> None:
        self._input_done = True
        self.refused.append(response.status)

    def feed(self, reads: Iterator[bytes]) -> Reader:
        for data in reads:
            self.data_received(data)
        return self


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def encoded(number: int, size: int, chunked: bool) -> bytes:
    body = bytes([65 + number % 26]) * size
    if chunked:
        framed = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:size // 2], body[size // 2:]) if part)
        return b"POST /r%d HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n" % (number, framed)
    return b"POST /r%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (number, size, body)


def split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    start = 0
    for cut in sorted({cut % (len(data) + 1) for cut in cuts}):
        yield data[start:cut]
        start = cut
    yield data[start:]


requests = st.lists(st.tuples(st.integers(0, LIMIT + 20), st.booleans()), min_size=1, max_size=5)


@given(requests=requests, cuts=st.lists(st.integers(0, 2000), max_size=12))
def test_whatever_the_reads_the_requests_are_the_same_and_none_follows_one_too_large(
        loop: asyncio.AbstractEventLoop, requests: list[tuple[int, bool]], cuts: list[int]) -> None:
    stream = b"".join(encoded(number, size, chunked) for number, (size, chunked) in enumerate(requests))
    whole = Reader(Owner(loop)).feed(iter([stream]))
    assert Reader(Owner(loop)).feed(split(stream, cuts)).accepted == whole.accepted
    expected = []
    for number, (size, _) in enumerate(requests):
        too_large = size > LIMIT
        expected.append((f"POST /r{number}", b"" if too_large else bytes([65 + number % 26]) * size, too_large,
                         too_large))
        if too_large:
            break  # refused by its size: answered, then the connection closes; nothing after it is parsed
    assert whole.accepted == expected and whole.refused == []


@given(cuts=st.lists(st.integers(0, 200), min_size=1, max_size=8))
def test_a_deadline_runs_exactly_while_a_request_part_is_arriving(
        loop: asyncio.AbstractEventLoop, cuts: list[int]) -> None:
    stream = encoded(1, 10, chunked=False)
    head_end = stream.index(b"\r\n\r\n") + 4
    reader = Reader(Owner(loop))
    received = 0
    for data in split(stream, cuts):
        reader.data_received(data)
        received += len(data)
        if received == len(stream):
            assert reader.request_deadline == NO_DEADLINE  # whole: nothing runs until the next request begins
        elif received >= head_end:
            assert reader.request_deadline == 200.0  # the body's
        elif received > 0:
            assert reader.request_deadline == 100.0  # the head's, from its first byte
        else:
            assert reader.request_deadline == NO_DEADLINE
