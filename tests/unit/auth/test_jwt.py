"""Token verification and key sources, without sockets: keys in memory, a fake JWKS fetch and a fake clock."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import jwt
import pytest

from proxy.auth.jwt import TokenRejectedError, TokenVerifier, claim_at, principal_from_claims
from proxy.auth.keys import JwksKeys, KeysUnavailableError, UnknownKeyError, VerificationKey, parse_jwks
from tests.idp import ISSUER, SigningKey, claims_for, forged_hs256, make_token, unsigned

AUDIENCE = "https://sidecar.example/mcp"
SECRET = b"s" * 32


class StaticKeys:
    def __init__(self, *keys: Any) -> None:
        self.keys = [VerificationKey(key=key) for key in keys]

    async def candidates(self, kid: str | None) -> Sequence[VerificationKey]:
        return self.keys


def rsa_verifier(*keys: SigningKey, **options: Any) -> TokenVerifier:
    settings = {"algorithms": ["RS256"], "issuers": [ISSUER], "audience": [AUDIENCE], **options}
    return TokenVerifier(StaticKeys(*(key.private.public_key() for key in keys)), **settings)


async def rejection(verifier: TokenVerifier, token: str) -> tuple[str, str]:
    with pytest.raises(TokenRejectedError) as rejected:
        await verifier.verify(token)
    assert rejected.value.error == "invalid_token"
    return rejected.value.reason, rejected.value.description


async def test_valid_token_becomes_principal(key_a: SigningKey) -> None:
    claims = claims_for(AUDIENCE, scope="mcp:read mcp:tools", realm_access={"roles": ["admin", "dev"]})
    verifier = rsa_verifier(key_a, roles_claim="realm_access.roles")
    principal = await verifier.verify(make_token(key_a, claims))
    assert principal.subject == "user-1"
    assert principal.issuer == ISSUER
    assert principal.scopes == {"mcp:read", "mcp:tools"}
    assert principal.roles == {"admin", "dev"}
    assert principal.authenticated
    assert principal.claims["realm_access"] == {"roles": ["admin", "dev"]}


@pytest.mark.parametrize(("change", "reason"), [
    (lambda now: {"exp": now - 120}, "token expired"),
    (lambda now: {"nbf": now + 120}, "token not yet valid"),
    (lambda now: {"aud": "https://other.example/mcp"}, "audience mismatch"),
    (lambda now: {"iss": "https://evil.example"}, "issuer not accepted"),
])
async def test_claim_failures_have_log_safe_reasons(key_a: SigningKey, change: Any, reason: str) -> None:
    # Times are taken when the test runs, not at collection: a long suite must not age the token into validity.
    token = make_token(key_a, {**claims_for(AUDIENCE), **change(int(time.time()))})
    logged, _ = await rejection(rsa_verifier(key_a), token)
    assert logged == reason
    assert token not in logged


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
async def test_required_claims(key_a: SigningKey, claim: str) -> None:
    claims = {name: value for name, value in claims_for(AUDIENCE).items() if name != claim}
    assert await rejection(rsa_verifier(key_a), make_token(key_a, claims)) == (
        f"missing claim {claim}", f"The access token lacks the '{claim}' claim")


async def test_leeway_tolerates_small_clock_skew(key_a: SigningKey) -> None:
    token = make_token(key_a, {**claims_for(AUDIENCE), "exp": int(time.time()) - 5})
    assert (await rsa_verifier(key_a, leeway=30).verify(token)).subject == "user-1"
    assert (await rejection(rsa_verifier(key_a, leeway=0), token))[0] == "token expired"


async def test_audience_list_containing_ours_and_several_issuers(key_a: SigningKey) -> None:
    token = make_token(key_a, claims_for([AUDIENCE, "account"], iss="https://second.example"))
    verifier = rsa_verifier(key_a, issuers=[ISSUER, "https://second.example"])
    assert (await verifier.verify(token)).issuer == "https://second.example"


async def test_attacks_are_refused_before_any_key_is_used(key_a: SigningKey) -> None:
    verifier = rsa_verifier(key_a)
    assert (await rejection(verifier, unsigned(claims_for(AUDIENCE))))[0] == "algorithm 'none' not in the allow-list"
    forged = forged_hs256(key_a.public_pem, claims_for(AUDIENCE))
    assert (await rejection(verifier, forged))[0] == "algorithm 'HS256' not in the allow-list"
    assert (await rejection(verifier, "garbage"))[0] == "malformed token"


async def test_second_candidate_key_verifies_after_a_signature_mismatch(key_a: SigningKey, key_b: SigningKey) -> None:
    token = make_token(key_b, claims_for(AUDIENCE))
    assert (await rsa_verifier(key_a, key_b).verify(token)).subject == "user-1"
    assert (await rejection(rsa_verifier(key_a), token))[0] == "bad signature"


async def test_hmac_verifier_refuses_rsa_tokens(key_a: SigningKey) -> None:
    verifier = TokenVerifier(StaticKeys(SECRET), algorithms=["HS256"], issuers=[ISSUER], audience=[AUDIENCE])
    good = jwt.encode(claims_for(AUDIENCE), SECRET, algorithm="HS256")
    assert (await verifier.verify(good)).subject == "user-1"
    assert (await rejection(verifier, make_token(key_a, claims_for(AUDIENCE))))[0] == (
        "algorithm 'RS256' not in the allow-list")


def test_scopes_from_scope_and_scp_and_roles_from_paths() -> None:
    assert principal_from_claims({"sub": "a", "scp": ["x", "y"]}).scopes == {"x", "y"}
    assert principal_from_claims({"sub": "a", "scp": "x y"}).scopes == {"x", "y"}
    assert principal_from_claims({"sub": "a", "scope": "x", "scp": ["y"]}).scopes == {"x", "y"}
    namespaced = {"sub": "a", "https://example.com/roles": ["ops"]}
    assert principal_from_claims(namespaced, "https://example.com/roles").roles == {"ops"}
    assert principal_from_claims({"sub": "a"}, "realm_access.roles").roles == frozenset()
    assert claim_at({"resource_access": {"api": {"roles": ["r"]}}}, "resource_access.api.roles") == ["r"]


class FakeIdp:
    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.fail = False

    async def fetch(self) -> dict[str, Any]:
        self.fetches += 1
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("connection refused")
        return {"keys": [key.jwk for key in self.keys]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_jwks_cached_for_its_lifespan(key_a: SigningKey) -> None:
    idp, clock = FakeIdp(key_a), Clock()
    keys = JwksKeys(idp.fetch, lifespan=300, cooldown=30, clock=clock)
    for _ in range(5):
        assert len(await keys.candidates("key-a")) == 1
    assert idp.fetches == 1
    clock.now += 301
    await keys.candidates("key-a")
    assert idp.fetches == 2


async def test_unknown_kid_flood_costs_one_fetch_per_cooldown(key_a: SigningKey) -> None:
    idp, clock = FakeIdp(key_a), Clock()
    keys = JwksKeys(idp.fetch, lifespan=300, cooldown=30, clock=clock)
    await keys.candidates("key-a")
    clock.now += 31

    async def lookup() -> None:
        with pytest.raises(UnknownKeyError):
            await keys.candidates(uuid.uuid4().hex)

    await asyncio.gather(*(lookup() for _ in range(50)))
    assert idp.fetches == 2
    clock.now += 10
    await lookup()
    assert idp.fetches == 2


async def test_rotation_is_picked_up_on_unknown_kid(key_a: SigningKey, key_b: SigningKey) -> None:
    idp, clock = FakeIdp(key_a), Clock()
    keys = JwksKeys(idp.fetch, lifespan=300, cooldown=30, clock=clock)
    await keys.candidates("key-a")
    idp.keys = [key_a, key_b]
    clock.now += 30
    assert [key.kid for key in await keys.candidates("key-b")] == ["key-b"]
    assert idp.fetches == 2


async def test_failed_refresh_keeps_old_keys_and_no_keys_means_unavailable(key_a: SigningKey) -> None:
    idp, clock = FakeIdp(key_a), Clock()
    keys = JwksKeys(idp.fetch, lifespan=10, cooldown=30, clock=clock)
    await keys.candidates("key-a")
    idp.fail = True
    clock.now += 60
    assert len(await keys.candidates("key-a")) == 1
    down = JwksKeys(idp.fetch, clock=clock)
    with pytest.raises(KeysUnavailableError):
        await down.candidates("key-a")


def test_jwks_parsing_skips_encryption_and_unusable_keys(key_a: SigningKey, key_b: SigningKey) -> None:
    document = {"keys": [key_a.jwk, {**key_b.jwk, "use": "enc"}, {"kty": "nope", "kid": "x"}]}
    assert list(parse_jwks(document)) == ["key-a"]
    with pytest.raises(ValueError, match="no usable signature keys"):
        parse_jwks({"keys": [{**key_b.jwk, "use": "enc"}]})


class CountingKeys(StaticKeys):
    def __init__(self, *keys: Any) -> None:
        super().__init__(*keys)
        self.lookups = 0

    async def candidates(self, kid: str | None) -> Sequence[VerificationKey]:
        self.lookups += 1
        return self.keys


async def test_verified_tokens_are_remembered_until_exp_or_a_minute(key_a: SigningKey) -> None:
    now = [time.time()]
    keys = CountingKeys(key_a.private.public_key())
    verifier = TokenVerifier(keys, algorithms=["RS256"], issuers=[ISSUER], audience=[AUDIENCE],
                             wall_clock=lambda: now[0])
    long_lived = make_token(key_a, claims_for(AUDIENCE, lifetime=3600))
    short_lived = make_token(key_a, claims_for(AUDIENCE, lifetime=10))
    for _ in range(3):
        await verifier.verify(long_lived)
        await verifier.verify(short_lived)
    assert keys.lookups == 2
    now[0] += 11  # past the short token's exp: checked again (and still within pyjwt's real-time leeway)
    await verifier.verify(short_lived)
    await verifier.verify(long_lived)
    assert keys.lookups == 3
    now[0] += 50  # a minute after the first check: the long-lived token is checked again too
    await verifier.verify(long_lived)
    assert keys.lookups == 4
    with pytest.raises(TokenRejectedError):
        await verifier.verify(long_lived[:-4] + "AAAA")  # a different string is never served from memory
