"""POSTs a JSON body to a URL with aiohttp (non-blocking): the webhook sender's HTTP, kept out of the approval
package."""

from __future__ import annotations

import aiohttp

from proxy.net.own_session import OwnSession


class JsonPoster(OwnSession):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the receiver answered 2xx, else what went wrong (an HTTP status or the error's name)."""
        try:
            async with self.session.post(url, data=body, headers=headers) as response:
                return None if 200 <= response.status < 300 else f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return error.__class__.__name__
