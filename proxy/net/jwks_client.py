"""Fetches a JWKS document over HTTP(S) with aiohttp (non-blocking), bounded in size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.net.own_session import OwnSession

MAX_JWKS_BYTES = 1024 * 1024


class JwksClient(OwnSession):
    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(timeout)
        self.url = url

    async def fetch(self) -> Mapping[str, Any]:
        async with self.session.get(self.url, headers={"Accept": "application/json"}) as response:
            response.raise_for_status()
            body = await response.content.read(MAX_JWKS_BYTES + 1)
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError(f"JWKS document larger than {MAX_JWKS_BYTES} bytes")
            return orjson.loads(body)
