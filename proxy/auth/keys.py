"""Where verification keys come from: a JWKS endpoint (cached, rotation-aware), PEM files, or an HMAC secret file.

No HTTP client here: the JWKS source takes an async `fetch()` returning the JWKS document, so the glue decides how
to fetch (off the event loop) and tests can count fetches without sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from proxy.config import MIN_HMAC_SECRET_BYTES
from proxy.secret_files import SecretFile

log = structlog.get_logger("proxy.auth")

FetchJwks = Callable[[], Awaitable[Mapping[str, Any]]]


class UnknownKeyError(Exception):
    """The token names a key the issuer does not (or no longer) publish."""


class KeysUnavailableError(Exception):
    """No keys could be loaded at all (the IdP's JWKS endpoint unreachable since startup)."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    key: Any  # a cryptography public key, or the HMAC secret bytes
    kid: str | None = None
    algorithm: str | None = None  # the JWK's declared "alg", if any


class KeySource(Protocol):
    async def candidates(self, kid: str | None) -> Sequence[VerificationKey]: ...


class JwksKeys:
    """A JWKS cached for `lifespan` seconds and refetched early when a token names an unknown kid.

    Refetches for unknown kids happen at most once per `cooldown` seconds, so a flood of tokens with random kids
    costs the IdP one request per cooldown. Concurrent lookups share one fetch. When a refresh fails the old keys
    stay in use.
    """

    def __init__(self, fetch: FetchJwks, *, lifespan: float = 300.0, cooldown: float = 30.0,
                 timeout: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch = fetch
        self.lifespan = lifespan
        self.cooldown = cooldown
        self.timeout = timeout
        self.clock = clock
        self.fetches = 0
        self._keys: dict[str | None, list[VerificationKey]] | None = None
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._attempt: asyncio.Future[None] | None = None  # the fetch under way, shared by every lookup

    @property
    def loaded(self) -> int:
        return sum(len(keys) for keys in (self._keys or {}).values())

    async def candidates(self, kid: str | None) -> Sequence[VerificationKey]:
        if self._keys is None or self.clock() - self._fetched_at >= self.lifespan:
            await self.refresh(floor=min(self.cooldown, 1.0))
        if self._keys is None:
            raise KeysUnavailableError("no signing keys could be fetched")
        found = self._match(kid)
        if not found and kid is not None:
            await self.refresh(floor=self.cooldown)
            found = self._match(kid)
        if not found:
            raise UnknownKeyError(f"no key with kid {kid!r}" if kid is not None else "no usable key")
        return found

    async def refresh(self, floor: float = 0.0) -> None:
        """Fetch the JWKS unless the last attempt is less than `floor` seconds old. Lookups that arrive while an
        attempt runs share its outcome (a hanging IdP costs them one timeout together, not one each)."""
        if self._attempt is None:
            if self.clock() - self._attempted_at < floor:
                return
            self._attempt = asyncio.ensure_future(self._fetch_once())
            self._attempt.add_done_callback(self._attempt_done)
        await asyncio.shield(self._attempt)  # one waiter cancelled does not cancel the others' fetch

    def _attempt_done(self, attempt: asyncio.Future[None]) -> None:
        self._attempt = None

    async def _fetch_once(self) -> None:
        now = self._attempted_at = self.clock()
        self.fetches += 1
        try:
            async with asyncio.timeout(self.timeout):
                document = await self.fetch()
            keys = parse_jwks(document)
        except Exception as exc:  # any failure keeps the keys we have
            log.warning("auth.jwks_fetch_failed", error=f"{exc.__class__.__name__}: {exc}"[:200], keeping=self.loaded)
            return
        self._keys, self._fetched_at = keys, now
        log.info("auth.jwks_loaded", keys=self.loaded)

    def _match(self, kid: str | None) -> list[VerificationKey]:
        assert self._keys is not None
        if kid is None:
            return [key for keys in self._keys.values() for key in keys]
        return self._keys.get(kid, [])


def parse_jwks(document: Mapping[str, Any]) -> dict[str | None, list[VerificationKey]]:
    """Public signature keys by kid; encryption keys, secrets and key types this build cannot use are skipped."""
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: dict[str | None, list[VerificationKey]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
            continue  # encryption keys, and shared secrets that have no place in a published key set
        try:
            jwk = PyJWK(entry)
        except PyJWTError:
            continue
        key = VerificationKey(key=jwk.key, kid=jwk.key_id, algorithm=entry.get("alg"))
        keys.setdefault(jwk.key_id, []).append(key)
    if not keys:
        raise ValueError("JWKS document has no usable signature keys")
    return keys


class PemKeys:
    """Public keys from PEM files; each file is re-read when it changes on disk (key rotation)."""

    def __init__(self, paths: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._files = [SecretFile(path, clock=clock) for path in paths]
        self._parsed: dict[str, tuple[int, VerificationKey]] = {}
        for secret in self._files:  # fail at startup on an unreadable or malformed file
            self._key(secret)

    async def candidates(self, kid: str | None) -> Sequence[VerificationKey]:
        return [self._key(secret) for secret in self._files]

    def _key(self, secret: SecretFile) -> VerificationKey:
        content = secret.read_bytes()
        cached = self._parsed.get(secret.path)
        if cached is None or cached[0] != secret.version:
            try:
                cached = (secret.version, VerificationKey(key=load_pem_public_key(content)))
            except ValueError:
                if cached is None:
                    raise ValueError(f"{secret.path} is not a PEM public key") from None
                log.warning("auth.pem_unparseable", path=secret.path)  # keep the previous key
                return cached[1]
            self._parsed[secret.path] = cached
        return cached[1]


class HmacKey:
    """A shared secret from a file, re-read when it changes; too short a secret fails at startup."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._file = SecretFile(path, clock=clock)
        if len(self._secret()) < MIN_HMAC_SECRET_BYTES:
            raise ValueError(f"{path}: an HMAC secret needs at least {MIN_HMAC_SECRET_BYTES} bytes")

    async def candidates(self, kid: str | None) -> Sequence[VerificationKey]:
        return [VerificationKey(key=self._secret())]

    def _secret(self) -> bytes:
        return self._file.read_bytes().rstrip(b"\r\n")
