"""The MCP listener's HTTP/1.1 server on its own, over real sockets with byte-level clients: the exchange of requests
and answers: keep-alive and closing, pipelining, HEAD, request bodies (chunked, Expect, the body limit), routing and
what a handler's outcome becomes on the wire."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.listener_support import MAX_BODY, Listening, on_uvloop, run_on_uvloop
from tests.kit import wait_until
from tests.raw_http import WAIT, assert_closed, connect, exchange, read_reply, request

# keep-alive and closing


async def test_keep_alive_serves_several_requests_on_one_connection(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    for number in range(3):
        writer.write(request("POST", "/echo", f"call {number}".encode()))
        reply = await read_reply(reader)
        assert (reply.status, reply.body) == (200, f"call {number}".encode())
        assert "connection" not in reply.headers
    assert len(listening.server.connections) == 1


async def test_connection_close_is_answered_then_closed(listening: Listening) -> None:
    reply, reader = await exchange(listening.port, request("GET", "/echo", Connection="close"))
    assert reply.status == 200
    assert reply.headers["connection"] == "close"
    await assert_closed(reader)


async def test_http_1_0_closes_after_its_answer(listening: Listening) -> None:
    reply, reader = await exchange(listening.port, request("GET", "/echo", version="1.0"))
    assert reply.status == 200
    assert reply.headers["connection"] == "close"
    await assert_closed(reader)


async def test_nothing_after_a_request_with_connection_close_is_processed(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/echo?last", Connection="close") + request("GET", "/echo?after"))
    reply = await read_reply(reader)
    assert (reply.status, reply.headers["connection"]) == (200, "close")
    await assert_closed(reader)
    assert listening.handlers.calls == ["echo last"]


async def test_pipelined_requests_are_answered_one_at_a_time_in_order(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/slow") + request("POST", "/echo?n=2", b"second") + request("GET", "/echo?n=3"))
    await asyncio.wait_for(listening.handlers.started.wait(), WAIT)
    assert listening.handlers.calls == ["slow"]  # the next ones wait for the answer in progress
    listening.handlers.release.set()
    replies = [await read_reply(reader) for _ in range(3)]
    assert [reply.body for reply in replies] == [b"slow answer", b"second", b""]
    assert listening.handlers.calls == ["slow", "echo n=2", "echo n=3"]


async def test_head_answer_carries_the_length_but_no_body(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("HEAD", "/doc") + request("GET", "/doc"))
    head = await read_reply(reader, head_only=True)
    assert (head.status, head.headers["content-length"]) == (200, str(len(b"a document")))
    following = await read_reply(reader)  # would be garbled had the HEAD answer carried a body
    assert (following.status, following.body) == (200, b"a document")


# bodies


async def test_a_chunked_request_body_arrives_whole(listening: Listening) -> None:
    body = b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    reader, writer = await connect(listening.port)
    writer.write(request("POST", "/echo", body, Transfer_Encoding="chunked") + request("GET", "/echo?after"))
    assert (await read_reply(reader)).body == b"hello world"
    assert (await read_reply(reader)).status == 200  # the framing held: the next request is parsed as one


async def test_a_body_announced_over_the_limit_is_answered_413_at_once_then_closed(listening: Listening) -> None:
    """Announced far over the limit and not sent (as from a client trickling gigabytes): answered without waiting."""
    reader, writer = await connect(listening.port)
    writer.write(request("POST", "/echo?huge", Content_Length=str(50 * 1024**3)) + b"the first bytes of it")
    reply = await read_reply(reader)
    assert (reply.status, reply.headers["connection"]) == (413, "close")
    writer.write(b"x" * 4096)  # what is still sent is read and dropped, then the connection closes
    writer.write_eof()
    await assert_closed(reader)
    assert listening.handlers.calls == ["echo huge"]


async def test_a_chunked_body_is_refused_once_its_running_total_passes_the_limit(listening: Listening) -> None:
    piece = b"y" * (MAX_BODY // 2 + 1)
    reader, writer = await connect(listening.port)
    writer.write(request("POST", "/echo", Transfer_Encoding="chunked") + b"%x\r\n%s\r\n" % (len(piece), piece))
    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))  # past the limit; the body's end never comes
    reply = await read_reply(reader)
    assert (reply.status, reply.headers["connection"]) == (413, "close")
    writer.write_eof()
    await assert_closed(reader)


async def test_the_answers_owed_come_before_a_413_and_nothing_after_it_runs(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/slow") + request("POST", "/echo?big", b"x" * (MAX_BODY + 1))
                 + request("GET", "/echo?after"))
    await asyncio.wait_for(listening.handlers.started.wait(), WAIT)
    listening.handlers.release.set()
    assert (await read_reply(reader)).body == b"slow answer"
    assert (await read_reply(reader)).status == 413
    await assert_closed(reader)
    assert listening.handlers.calls == ["slow", "echo big"]


async def test_expect_100_continue_invites_the_body_then_answers(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    head = request("POST", "/echo", Expect="100-continue", Content_Length="5")
    writer.write(head)
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    assert (await read_reply(reader)).body == b"hello"


async def test_expect_100_continue_over_the_limit_is_answered_without_inviting_the_body(
        listening: Listening) -> None:
    reply, reader = await exchange(listening.port, request("POST", "/echo", Expect="100-continue",
                                                      Content_Length=str(MAX_BODY + 1)))
    assert reply.status == 413  # the first thing back: no 100 Continue came before it
    assert reply.headers["connection"] == "close"
    await assert_closed(reader)


async def test_a_client_that_sends_the_refused_body_anyway_gets_no_further_answers(listening: Listening) -> None:
    """The answer to an oversized Expect request is the last on the connection, whatever follows it."""
    oversized = request("POST", "/echo?oversized", Expect="100-continue", Content_Length=str(MAX_BODY + 1))
    reply, reader = await exchange(listening.port, oversized + b"z" * (MAX_BODY + 1)
                                   + request("GET", "/echo?after", Connection="close"))
    assert (reply.status, reply.headers["connection"]) == (413, "close")
    await assert_closed(reader)
    assert listening.handlers.calls == ["echo oversized"]


# routing and handler outcomes


async def test_an_http_1_1_request_without_host_gets_400(listening: Listening) -> None:
    reply, reader = await exchange(listening.port, b"GET /echo HTTP/1.1\r\n\r\n")
    assert reply.status == 400 and b"Host" in reply.body
    await assert_closed(reader)
    reply, _ = await exchange(listening.port, b"GET /echo?old HTTP/1.0\r\n\r\n")  # 1.0 had no Host
    assert reply.status == 200 and listening.handlers.calls == ["echo old"]


async def test_an_absolute_form_target_is_routed_by_its_path(listening: Listening) -> None:
    reply, _ = await exchange(listening.port, request("GET", "http://test/echo?n=abs"))
    assert reply.status == 200 and listening.handlers.calls == ["echo n=abs"]


async def test_a_204_answer_has_neither_length_nor_body(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/nothing") + request("GET", "/echo?n=next"))
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 204 ") and b"content-length" not in head.lower()
    following = await read_reply(reader)  # the 204's body was not sent: the next answer follows at once
    assert following.status == 200 and listening.handlers.calls == ["echo n=next"]


async def test_work_after_the_answer_runs_once_it_is_written_and_a_leaving_client_does_not_cancel_it(
        listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/then"))
    assert (await read_reply(reader)).body == b"answered first"  # while the work after it is still waiting
    assert listening.handlers.calls == ["after: started"]
    writer.close()
    await wait_until(lambda: not listening.server.connections)
    listening.handlers.release.set()
    await wait_until(lambda: listening.handlers.calls == ["after: started", "after: done"])


async def test_a_failure_after_the_answer_leaves_the_answer_and_the_connection_alone(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/then-fail") + request("GET", "/echo?n=next"))
    assert ((await read_reply(reader)).status, (await read_reply(reader)).status) == (200, 200)


async def test_a_connection_accepted_as_the_drain_begins_is_closed_at_once(listening: Listening) -> None:
    listening.server.draining = True  # as drain() sets it before it walks the open connections
    reader, _ = await connect(listening.port)
    await assert_closed(reader)


async def test_an_unknown_path_gets_404_and_a_wrong_method_405_with_allow(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/nowhere") + request("DELETE", "/echo"))
    assert (await read_reply(reader)).status == 404
    wrong = await read_reply(reader)
    assert (wrong.status, wrong.headers["allow"]) == (405, "GET, POST")


async def test_a_handler_exception_gets_500_and_the_connection_stays_usable(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/fail"))
    assert (await read_reply(reader)).status == 500
    writer.write(request("POST", "/echo", b"still here"))
    assert (await read_reply(reader)).body == b"still here"


@pytest.mark.parametrize("path", ["/refused-upstream", "/leaked-cancel"])
async def test_a_handler_failure_that_looks_like_a_disconnect_still_gets_500(listening: Listening, path: str) -> None:
    """A ConnectionError or CancelledError out of a handler while the client is still there is the handler's
    failure: the client gets its 500, not silence on a connection that never answers again."""
    reader, writer = await connect(listening.port)
    writer.write(request("GET", path))
    assert (await read_reply(reader)).status == 500
    writer.write(request("POST", "/echo", b"still here"))
    assert (await read_reply(reader)).body == b"still here"


async def test_a_line_break_in_a_response_header_gives_500_not_a_split_response(listening: Listening) -> None:
    reader, writer = await connect(listening.port)
    writer.write(request("GET", "/split") + request("GET", "/echo?after"))
    reply = await read_reply(reader)
    assert reply.status == 500
    assert "set-cookie" not in reply.headers
    assert (await read_reply(reader)).status == 200


async def test_an_upgrade_request_is_answered_and_the_connection_closed(listening: Listening) -> None:
    upgrade = request("GET", "/echo?upgrade", Connection="Upgrade", Upgrade="websocket")
    reply, reader = await exchange(listening.port, upgrade + b"\x81\x05hello" + request("GET", "/echo?after"))
    assert (reply.status, reply.headers["connection"]) == (200, "close")
    await assert_closed(reader)  # what followed the upgrade was not taken for requests
    assert listening.handlers.calls == ["echo upgrade"]


async def test_a_client_disconnect_cancels_its_running_handler(listening: Listening) -> None:
    _reader, writer = await connect(listening.port)
    writer.write(request("GET", "/slow"))
    await asyncio.wait_for(listening.handlers.started.wait(), WAIT)
    writer.close()
    await asyncio.wait_for(listening.handlers.cancelled.wait(), WAIT)
    await wait_until(lambda: not listening.server.connections, WAIT)


# the same on uvloop, which production runs on: its transports (buffering, pausing, closing) are its own

ON_UVLOOP = [
    test_pipelined_requests_are_answered_one_at_a_time_in_order,
    test_expect_100_continue_invites_the_body_then_answers,
    test_an_upgrade_request_is_answered_and_the_connection_closed,
    test_a_client_disconnect_cancels_its_running_handler,
    test_a_body_announced_over_the_limit_is_answered_413_at_once_then_closed,
    test_a_chunked_body_is_refused_once_its_running_total_passes_the_limit,
]


@on_uvloop(ON_UVLOOP)
def test_on_uvloop(scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    run_on_uvloop(scenario, monkeypatch)
