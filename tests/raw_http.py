"""A byte-level HTTP/1.1 client for tests: requests written as raw bytes, answers read by their framing, every
wait bounded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

WAIT = 5.0


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def request(method: str, target: str, body: bytes = b"", version: str = "1.1", **headers: str) -> bytes:
    """A request's bytes; keyword headers use underscores for dashes (Content_Type=...)."""
    lines = [f"{method} {target} HTTP/{version}", "Host: test"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if body and "Transfer_Encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)


async def read_reply(reader: asyncio.StreamReader, head_only: bool = False) -> Reply:
    """One response, framed by its Content-Length or chunked encoding (a HEAD answer has no body)."""
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        if head_only:
            body = b""
        elif headers.get("transfer-encoding") == "chunked":
            body = await _read_chunks(reader)
        else:
            body = await reader.readexactly(int(headers["content-length"]))
    return Reply(int(status_line.split(" ")[1]), headers, body)


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
        parts.append((await reader.readexactly(size + 2))[:-2])
    assert await reader.readexactly(2) == b"\r\n"
    return b"".join(parts)


async def assert_closed(reader: asyncio.StreamReader) -> None:
    """The server closed the connection, with nothing more sent."""
    try:
        rest = await asyncio.wait_for(reader.read(), WAIT)
    except ConnectionResetError:
        return
    assert rest == b""


async def exchange(port: int, data: bytes) -> tuple[Reply, asyncio.StreamReader]:
    """Send `data` on a new connection and read the first answer; the reader is left for what follows."""
    reader, writer = await connect(port)
    writer.write(data)
    return await read_reply(reader), reader
