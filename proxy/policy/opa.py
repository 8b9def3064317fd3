"""Remote OPA: the same input POSTed to an OPA server's data API; a timeout or any failure denies.

OPA is not asked for data.mcp.argument_names: it gets a tools/call's whole arguments. The entrypoint exists for the
in-process engine's memo (narrowing.py), which has no counterpart here, and would cost one more round trip per call.
A policy whose argument_names names every argument its decision reads decides the same under both engines.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from proxy.policy.engine import PolicyUnavailableError


class OpaEngine:
    """Queries `POST {url}/v1/data/mcp/<rule>` with `{"input": ...}`; a missing `result` is undefined."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self.url = url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._session: aiohttp.ClientSession | None = None
        self._revision: str | None = None
        self.failures = 0

    @property
    def revision(self) -> str | None:
        return self._revision

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                              json_serialize=lambda value: orjson.dumps(value).decode())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def evaluate(self, rule: str, document: dict[str, Any]) -> tuple[Any, str | None]:
        if self._session is None:
            raise PolicyUnavailableError("OPA client not started")
        try:
            async with asyncio.timeout(self.timeout_seconds):
                async with self._session.post(f"{self.url}/v1/data/mcp/{rule}", params={"provenance": "true"},
                                              data=orjson.dumps({"input": document}),
                                              headers={"Content-Type": "application/json"}) as response:
                    if response.status != 200:
                        raise PolicyUnavailableError(f"OPA answered HTTP {response.status}")
                    body = orjson.loads(await response.read())
        except TimeoutError:
            self.failures += 1
            raise PolicyUnavailableError(f"OPA did not answer within {self.timeout_seconds:g}s") from None
        except (aiohttp.ClientError, OSError, orjson.JSONDecodeError) as exc:
            self.failures += 1
            raise PolicyUnavailableError(f"OPA request failed: {exc.__class__.__name__}") from None
        except PolicyUnavailableError:
            self.failures += 1
            raise
        if not isinstance(body, dict):
            raise PolicyUnavailableError("OPA answered something other than an object")
        self._revision = _revision_of(body) or f"opa:{self.url}"
        return body.get("result"), self._revision

    async def readiness(self) -> tuple[bool, str]:
        if self._session is None:
            return False, "OPA client not started"
        try:
            async with asyncio.timeout(2), self._session.get(f"{self.url}/health") as response:
                ok = response.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return False, f"OPA at {self.url} unreachable: {exc.__class__.__name__}"
        return ok, f"OPA at {self.url} {'healthy' if ok else 'unhealthy'}; {self.failures} failed queries"


def _revision_of(body: dict[str, Any]) -> str | None:
    """The bundle revision OPA reports in `provenance` (single or multi-bundle form)."""
    provenance = body.get("provenance")
    if not isinstance(provenance, dict):
        return None
    if isinstance(provenance.get("revision"), str):
        return provenance["revision"]
    bundles = provenance.get("bundles")
    if isinstance(bundles, dict):
        revisions = [b.get("revision") for b in bundles.values() if isinstance(b, dict) and b.get("revision")]
        return ",".join(sorted(revisions)) or None
    return None
