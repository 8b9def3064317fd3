"""An aiohttp client session a component owns on its own (no cookies, one total timeout), opened and closed with
the component's lifecycle."""

from __future__ import annotations

import aiohttp


class OwnSession:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                              cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, f"{type(self).__name__} not started"
        return self._session
