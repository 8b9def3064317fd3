"""The listener's messages, without sockets: request parsing helpers, whole responses, heads, chunks, streams."""

from __future__ import annotations

import re

import orjson
import pytest
from multidict import CIMultiDict

from proxy.net.listener.messages import (
    LAST_CHUNK,
    HeaderInjectionError,
    HttpRequest,
    HttpResponse,
    ResponseStream,
    chunk,
    http_date,
    response_head,
)


def request(target: bytes = b"/mcp", **headers: str) -> HttpRequest:
    return HttpRequest("POST", target, CIMultiDict(headers), "127.0.0.1")


@pytest.mark.parametrize(("target", "path", "query"), [
    (b"/mcp", "/mcp", ""),
    (b"/mcp?a=1&b=2", "/mcp", "a=1&b=2"),
    (b"http://example.com/mcp?x=1", "/mcp", "x=1"),
    (b"https://example.com", "/", ""),
    (b"http://example.com/", "/", ""),
])
def test_origin_and_absolute_form_targets(target: bytes, path: str, query: str) -> None:
    parsed = request(target)
    assert (parsed.path, parsed.query_string) == (path, query)


def test_an_absolute_form_target_without_a_path_keeps_its_query() -> None:
    parsed = request(b"http://example.com?session_id=abc")
    assert (parsed.path, parsed.query) == ("/", {"session_id": "abc"})


def test_query_keeps_the_first_value_and_blank_values() -> None:
    assert request(b"/sse?session=a&session=b&empty=&x=%20y").query == {"session": "a", "empty": "", "x": " y"}


def test_a_path_that_is_not_utf8_survives() -> None:
    assert request(b"/caf\xe9").path.encode("utf-8", "surrogateescape") == b"/caf\xe9"


@pytest.mark.parametrize(("value", "length"), [("12", 12), ("0", 0), ("-1", None), ("1e3", None), ("", None)])
def test_content_length_only_when_it_is_digits(value: str, length: int | None) -> None:
    assert request(**{"Content-Length": value}).content_length == length
    assert request().content_length is None


def test_content_type_is_the_bare_media_type() -> None:
    assert request(**{"content-type": "Application/JSON; charset=utf-8"}).content_type == "application/json"
    assert request().content_type == ""


def test_whole_responses() -> None:
    text = HttpResponse.text(404, "Not Found", {"X-A": "1"})
    assert (text.status, text.body, text.headers) == (404, b"Not Found", {"Content-Type": "text/plain; charset=utf-8",
                                                                         "X-A": "1"})
    document = HttpResponse.json({"a": [1]}, status=201)
    assert document.status == 201 and orjson.loads(document.body) == {"a": [1]}
    assert document.headers == {"Content-Type": "application/json"} and HttpResponse().headers == {}


def head_lines(head: bytes) -> list[str]:
    assert head.endswith(b"\r\n\r\n")
    return head.decode().split("\r\n")[:-2]


def test_a_head_with_a_length() -> None:
    lines = head_lines(response_head(200, {"Content-Type": "application/json"}, length=5, keep_alive=True))
    assert lines[0] == "HTTP/1.1 200 OK" and "Content-Type: application/json" in lines
    assert "Content-Length: 5" in lines and "Connection: close" not in lines
    assert "Server: mcp-sidecar" in lines and any(re.fullmatch(r"Date: \w{3}, .* GMT", line) for line in lines)


def test_a_chunked_head_and_an_http_1_0_head_that_closes() -> None:
    chunked = head_lines(response_head(200, {}, length=None, keep_alive=True))
    assert "Transfer-Encoding: chunked" in chunked and not any(line.startswith("Content-Length") for line in chunked)
    closing = head_lines(response_head(200, {}, length=None, keep_alive=False, chunked=False))
    assert "Transfer-Encoding: chunked" not in closing and "Connection: close" in closing


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses_carry_no_content_length(status: int) -> None:
    lines = head_lines(response_head(status, {}, length=0, keep_alive=True))
    assert not any(line.startswith("Content-Length") for line in lines)


def test_an_unknown_status_still_has_a_reason() -> None:
    assert head_lines(response_head(599, {}, length=0, keep_alive=True))[0] == "HTTP/1.1 599 Unknown"


@pytest.mark.parametrize("headers", [{"X": "a\r\nSet-Cookie: x"}, {"X": "a\nb"}, {"X\r\n": "a"}, {"X:Y": "a"}])
def test_header_injection_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(HeaderInjectionError):
        response_head(200, headers, length=0, keep_alive=True)


def test_chunks() -> None:
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_http_date_is_an_rfc_7231_date() -> None:
    assert re.fullmatch(rb"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT", http_date())


class Wire:
    """What a stream sent: `sent` by the awaited path, `now` by the immediate one (False: the socket is full)."""

    def __init__(self, room: bool = True) -> None:
        self.sent: list[bytes] = []
        self.room = room
        self.aborted = False

    async def send(self, data: bytes) -> None:
        self.sent.append(data)

    def send_now(self, data: bytes) -> bool:
        if self.room:
            self.sent.append(data)
        return self.room

    def abort(self) -> None:
        self.aborted = True

    def stream(self, chunked: bool = True, head: bytes = b"") -> ResponseStream:
        return ResponseStream(self.send, self.abort, chunked=chunked, send_now=self.send_now, head=head)


async def test_writes_are_chunks_and_finish_ends_once() -> None:
    wire = Wire()
    stream = wire.stream()
    await stream.write(b"ab")
    await stream.write(b"")  # nothing to send
    await stream.finish()
    await stream.finish()
    await stream.write_last(b"late")  # already finished: dropped
    assert wire.sent == [b"2\r\nab\r\n", LAST_CHUNK] and stream.finished


async def test_a_deferred_head_goes_with_the_first_write() -> None:
    wire = Wire()
    stream = wire.stream(head=b"HEAD")
    await stream.write_last(b"{}")
    assert wire.sent == [b"HEAD" + b"2\r\n{}\r\n" + LAST_CHUNK]


async def test_an_unchunked_stream_writes_raw_bytes() -> None:
    wire = Wire()
    stream = wire.stream(chunked=False, head=b"HEAD")
    await stream.write(b"data")
    await stream.finish()
    assert wire.sent == [b"HEADdata"]


async def test_finish_sends_a_head_still_deferred() -> None:
    wire = Wire()
    await wire.stream(chunked=False, head=b"HEAD").finish()
    assert wire.sent == [b"HEAD"]


def test_flush_head_sends_it_once_unless_the_socket_is_full() -> None:
    full = Wire(room=False)
    stream = full.stream(head=b"HEAD")
    stream.flush_head()
    assert full.sent == []
    full.room = True
    stream.flush_head()
    stream.flush_head()
    assert full.sent == [b"HEAD"]


async def test_write_if_idle_writes_whole_and_never_after_the_end() -> None:
    wire = Wire()
    stream = wire.stream(head=b"HEAD")
    before = stream.last_write
    assert stream.write_if_idle(b": keepalive\n\n")
    assert wire.sent == [b"HEAD" + chunk(b": keepalive\n\n")] and stream.last_write >= before
    await stream.write(b"x")
    assert wire.sent[-1] == chunk(b"x")  # the head is not sent twice
    await stream.finish()
    assert not stream.write_if_idle(b": keepalive\n\n")


def test_write_if_idle_skips_a_full_socket_and_a_stream_without_send_now() -> None:
    full = Wire(room=False)
    assert not full.stream().write_if_idle(b"x") and full.sent == []
    assert not ResponseStream(Wire().send, lambda: None).write_if_idle(b"x")
