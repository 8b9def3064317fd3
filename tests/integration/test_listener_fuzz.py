"""Property-based fuzzing (hypothesis) of bodies, headers and framing through the real listener of a sidecar process:
never a 500, always a well-formed HTTP answer (a JSON-RPC error where the answer is JSON), the process stays up and
its memory bounded."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kit import child_env, free_port, stop_process, wait_for_port

EXAMPLES = 150
RSS_GROWTH_LIMIT_KB = 40 * 1024


@dataclass
class Sidecar:
    process: subprocess.Popen[bytes]
    port: int

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def sidecar(stateless_upstream: str) -> Iterator[Sidecar]:
    port, admin = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--upstream", stateless_upstream, "--listen", f"127.0.0.1:{port}",
         "--admin-listen", f"127.0.0.1:{admin}"],
        env=child_env(MCP_SIDECAR__SERVER__MAX_BODY_BYTES="4096", MCP_SIDECAR__AUTH__MODE="off"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process=process)
        yield Sidecar(process, port)
    finally:
        stop_process(process)


def _json(value: object) -> bytes:
    return json.dumps(value).encode()  # the standard library writes integers past 64 bits too


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
methods = st.sampled_from(["tools/call", "tools/list", "initialize", "ping", "prompts/get", "resources/read",
                           "notifications/initialized", "notifications/cancelled", "server/discover", "x/unknown"])
rpc_messages = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0", 2])},
    optional={"id": st.one_of(st.integers(), st.text(max_size=8), st.none(), st.lists(st.integers(), max_size=2)),
              "method": methods | st.text(max_size=12),
              "params": json_values | st.fixed_dictionaries({}, optional={"name": header_text,
                                                                          "arguments": json_values,
                                                                          "Name": header_text,
                                                                          "_meta": json_values}),
              "result": json_values, "error": json_values})
bodies = st.one_of(rpc_messages.map(_json), json_values.map(_json), st.binary(max_size=600),
                   st.binary(min_size=4097, max_size=6000))
optional_headers = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""])
    | header_text,
    "Accept": st.sampled_from(["application/json, text/event-stream", "application/json", "*/*"]) | header_text,
    "MCP-Protocol-Version": st.sampled_from(["2026-07-28", "2025-11-25", "2025-03-26", "1999-01-01"]) | header_text,
    "Mcp-Method": methods | header_text,
    "Mcp-Name": header_text,
    "Mcp-Session-Id": header_text,
    "Origin": st.sampled_from(["https://evil.example", "http://127.0.0.1"]) | header_text,
    "Authorization": st.sampled_from(["Bearer x.y.z", "Basic abc"]) | header_text,
})
targets = st.sampled_from(["/mcp", "/mcp?x=1", "/sse", "/messages/?session_id=nope", "/", "/.well-known/x", "//mcp"])
framings = st.sampled_from(["length", "chunked", "short", "none"])
verbs = st.sampled_from(["POST", "POST", "POST", "GET", "DELETE", "PUT", "OPTIONS"])


def encode(verb: str, target: str, headers: dict[str, str], body: bytes, framing: str, cut: int) -> bytes:
    lines = [f"{verb} {target} HTTP/1.1", "Host: 127.0.0.1"] + [f"{name}: {value}" for name, value in headers.items()]
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "short":
        lines.append(f"Content-Length: {max(0, len(body) - 1 - cut % max(1, len(body)))}")
        payload = body
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        step = 1 + cut % 97
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                           for i in range(0, len(body), step)) + b"0\r\n\r\n"
    else:
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)  # no half-close: the listener reads a client's end of input as leaving (cancellation)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
            if _complete(received):
                break
    head, _, rest = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ")
    assert version in ("HTTP/1.1", "HTTP/1.0"), status_line
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status), headers, _body(headers, rest)


def _complete(received: bytes) -> bool:
    head, sep, rest = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    lowered = head.lower()
    if b"content-type: text/event-stream" in lowered:
        return True  # a stream stays open: its head is the answer
    if b"transfer-encoding: chunked" in lowered:
        return rest.endswith(b"0\r\n\r\n")
    for line in lowered.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


def _body(headers: dict[str, str], rest: bytes) -> bytes:
    if headers.get("transfer-encoding") != "chunked":
        return rest[:int(headers.get("content-length", len(rest)))]
    out, view = b"", rest
    while view:
        size_line, _, view = view.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, view = out + view[:size], view[size + 2:]
    return out


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(verb=verbs, target=targets, headers=optional_headers, body=bodies, framing=framings, cut=st.integers(0, 999))
def test_hostile_requests_get_well_formed_answers(sidecar: Sidecar, verb: str, target: str, headers: dict[str, str],
                                                  body: bytes, framing: str, cut: int) -> None:
    status, answer_headers, answer = exchange(sidecar.port, encode(verb, target, headers, body, framing, cut))
    assert 100 <= status < 600 and status != 500, (status, answer[:200])
    content_type = answer_headers.get("content-type", "")
    if status >= 400 and content_type.startswith("application/json") and answer:
        message = orjson.loads(answer)
        assert "error" in message or message.get("result", {}).get("isError") is True, message
    if content_type.startswith("application/json") and answer and status < 300:
        assert orjson.loads(answer).get("jsonrpc") == "2.0"


def test_the_process_survives_the_fuzzing_with_bounded_memory(sidecar: Sidecar) -> None:
    before = sidecar.rss_kb()
    test_hostile_requests_get_well_formed_answers(sidecar)
    assert sidecar.process.poll() is None
    assert sidecar.rss_kb() - before < RSS_GROWTH_LIMIT_KB
    status, _, _ = exchange(sidecar.port, b"GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    assert status < 500
