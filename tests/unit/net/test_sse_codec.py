from __future__ import annotations

import pytest

from proxy.net.sse_codec import EventTooLargeError, SseDecoder, encode_event, parse_block


def test_events_split_across_chunks_come_out_whole() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"event: message\r\nda") == []
    assert decoder.feed(b"ta: {\"a\": 1}\r\n") == []
    [event] = decoder.feed(b"\r\nid: 7\ndata: x\n\n")[:1]
    assert (event.event, event.data, event.id) == ("message", '{"a": 1}', None)
    assert event.raw == b"event: message\r\ndata: {\"a\": 1}\r\n\r\n"


def test_multi_line_data_id_and_retry() -> None:
    event = parse_block(b"id: 42\nretry: 500\ndata: one\ndata: two\n\n")
    assert event is not None
    assert (event.data, event.id, event.retry, event.is_comment) == ("one\ntwo", "42", 500, False)


def test_comments_are_kept_as_comment_events() -> None:
    decoder = SseDecoder()
    [comment, event] = decoder.feed(b": keep-alive\n\ndata: hi\n\n")
    assert comment.is_comment and comment.encode() == b": keep-alive\n\n"
    assert event.data == "hi"


def test_encode_round_trips() -> None:
    raw = encode_event("a\nb", event="message", event_id="3")
    event = parse_block(raw)
    assert event is not None and (event.data, event.id) == ("a\nb", "3")


def test_oversized_event_is_refused() -> None:
    decoder = SseDecoder(max_event_bytes=16)
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"data: " + b"x" * 32)
