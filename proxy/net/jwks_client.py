"""Fetches a JWKS document over HTTP(S) with aiohttp (non-blocking), bounded in size; one small session of its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

MAX_JWKS_BYTES = 1024 * 1024


class JwksClient:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                              cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self) -> Mapping[str, Any]:
        assert self._session is not None, "JWKS client not started"
        async with self._session.get(self.url, headers={"Accept": "application/json"}) as response:
            response.raise_for_status()
            body = await response.content.read(MAX_JWKS_BYTES + 1)
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError(f"JWKS document larger than {MAX_JWKS_BYTES} bytes")
            return orjson.loads(body)
