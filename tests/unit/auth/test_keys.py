"""Key sources: the JWKS cache (shared fetches, timeouts, expiry), PEM files and HMAC secrets re-read on rotation.

tests/unit/auth/test_jwt.py covers the JWKS cooldown and rotation through the verifier; these pin the sources alone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from proxy.auth.keys import HmacKey, JwksKeys, KeysUnavailableError, PemKeys, UnknownKeyError, parse_jwks
from proxy.config import MIN_HMAC_SECRET_BYTES
from tests.idp import SigningKey


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Idp:
    """A fetch function serving `keys`; counts calls, may fail or hang."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.calls = 0
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> Mapping[str, Any]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return {"keys": [key.jwk for key in self.keys]}


def pem_of(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def replace_file(path: Path, content: bytes) -> None:
    """Write beside and rename over, as a secret rotation does: a new inode, so the change is always seen."""
    fresh = path.with_suffix(".new")
    fresh.write_bytes(content)
    os.replace(fresh, path)


async def test_a_token_without_kid_gets_every_key(key_a: SigningKey, key_b: SigningKey) -> None:
    keys = JwksKeys(Idp(key_a, key_b).fetch, clock=Clock())
    assert sorted(key.kid for key in await keys.candidates(None)) == ["key-a", "key-b"]
    assert keys.loaded == 2


async def test_concurrent_first_lookups_share_one_fetch(key_a: SigningKey) -> None:
    idp = Idp(key_a)
    idp.gate = asyncio.Event()
    keys = JwksKeys(idp.fetch, clock=Clock())
    lookups = [asyncio.ensure_future(keys.candidates("key-a")) for _ in range(10)]
    await asyncio.sleep(0)  # let every lookup reach the lock
    idp.gate.set()
    found = await asyncio.wait_for(asyncio.gather(*lookups), 2)
    assert [len(keys_found) for keys_found in found] == [1] * 10
    assert idp.calls == 1 and keys.fetches == 1


async def test_a_hanging_fetch_times_out_and_counts_as_unavailable(key_a: SigningKey) -> None:
    idp = Idp(key_a)
    idp.gate = asyncio.Event()  # never set
    keys = JwksKeys(idp.fetch, timeout=0.05, clock=Clock())
    with pytest.raises(KeysUnavailableError):
        await asyncio.wait_for(keys.candidates("key-a"), 2)
    assert keys.loaded == 0


async def test_a_garbage_document_keeps_the_old_keys(key_a: SigningKey) -> None:
    clock, idp = Clock(), Idp(key_a)
    keys = JwksKeys(idp.fetch, lifespan=10, clock=clock)
    await keys.candidates("key-a")
    idp.keys = []  # {"keys": []}: no usable key
    clock.now += 11
    assert [key.kid for key in await keys.candidates("key-a")] == ["key-a"]
    assert idp.calls == 2


async def test_refresh_respects_its_floor(key_a: SigningKey) -> None:
    clock, idp = Clock(), Idp(key_a)
    keys = JwksKeys(idp.fetch, clock=clock)
    await keys.refresh()
    await keys.refresh(floor=5)
    assert idp.calls == 1
    clock.now += 5
    await keys.refresh(floor=5)
    assert idp.calls == 2


async def test_an_unknown_kid_names_itself(key_a: SigningKey) -> None:
    keys = JwksKeys(Idp(key_a).fetch, clock=Clock())
    with pytest.raises(UnknownKeyError, match="'other'"):
        await keys.candidates("other")


@pytest.mark.parametrize("document", [{}, {"keys": "x"}, [], {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}])
def test_parse_jwks_refuses_documents_without_usable_keys(document: Any) -> None:
    with pytest.raises(ValueError, match="JWKS document"):
        parse_jwks(document)


def test_parse_jwks_keeps_declared_algorithms_and_several_keys_per_kid(key_a: SigningKey) -> None:
    entry = key_a.jwk
    parsed = parse_jwks({"keys": [entry, {**entry, "alg": "RS512"}, "junk"]})
    assert [key.algorithm for key in parsed["key-a"]] == ["RS256", "RS512"]


async def test_pem_keys_are_all_candidates_and_follow_rotation(tmp_path: Path) -> None:
    first, second, third = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    a, b = tmp_path / "a.pem", tmp_path / "b.pem"
    a.write_bytes(pem_of(first))
    b.write_bytes(pem_of(second))
    clock = Clock()
    keys = PemKeys([str(a), str(b)], clock=clock)
    found = await keys.candidates("ignored")
    assert [key.key.public_numbers() for key in found] == [first.public_key().public_numbers(),
                                                           second.public_key().public_numbers()]
    replace_file(a, pem_of(third))
    clock.now += 2  # past the secret file's check interval
    assert (await keys.candidates(None))[0].key.public_numbers() == third.public_key().public_numbers()


async def test_a_broken_rotation_keeps_the_previous_pem_key(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k.pem"
    path.write_bytes(pem_of(private))
    clock = Clock()
    keys = PemKeys([str(path)], clock=clock)
    replace_file(path, b"-----BEGIN PUBLIC KEY-----\ngarbage\n")
    clock.now += 2
    assert (await keys.candidates(None))[0].key.public_numbers() == private.public_key().public_numbers()


def test_a_malformed_pem_fails_at_startup_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(b"not a key")
    with pytest.raises(ValueError, match=r"bad\.pem is not a PEM public key"):
        PemKeys([str(path)])
    with pytest.raises(FileNotFoundError):
        PemKeys([str(tmp_path / "missing.pem")])


async def test_hmac_secret_without_its_trailing_newline_and_rotated(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"s" * MIN_HMAC_SECRET_BYTES + b"\r\n")
    clock = Clock()
    key = HmacKey(str(path), clock=clock)
    assert [candidate.key for candidate in await key.candidates("any")] == [b"s" * MIN_HMAC_SECRET_BYTES]
    replace_file(path, b"t" * (MIN_HMAC_SECRET_BYTES + 1))
    clock.now += 2
    assert (await key.candidates(None))[0].key == b"t" * (MIN_HMAC_SECRET_BYTES + 1)


def test_a_short_hmac_secret_fails_at_startup(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"x" * (MIN_HMAC_SECRET_BYTES - 1) + b"\n")  # the newline does not count
    with pytest.raises(ValueError, match=f"at least {MIN_HMAC_SECRET_BYTES} bytes"):
        HmacKey(str(path))


async def test_lookups_queued_behind_a_hanging_refresh_share_its_outcome(key_a: SigningKey) -> None:
    idp = Idp(key_a)
    keys = JwksKeys(idp.fetch, lifespan=60, cooldown=0.05, timeout=0.2)
    await keys.candidates("key-a")
    keys._fetched_at -= 61  # the cached set has expired (as has the last attempt)
    keys._attempted_at -= 61
    idp.gate = asyncio.Event()  # and the IdP now hangs
    loop = asyncio.get_running_loop()
    started = loop.time()
    found = await asyncio.wait_for(asyncio.gather(*(keys.candidates("key-a") for _ in range(4))), 5)
    assert all(len(candidates) == 1 for candidates in found)  # the old key stays in use
    assert idp.calls == 2 and loop.time() - started < 0.4  # one more attempt, shared by all four
