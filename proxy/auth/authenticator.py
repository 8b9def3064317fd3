"""Who calls: a bearer token from the caller's `Authorization` becomes a Principal, or the error the client gets.

Built once at startup and shared: the auth stage asks it for every message, the legacy `GET /sse` handler for the
stream it opens. Challenges follow RFC 6750 and point at the RFC 9728 metadata (resource_metadata.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable

import structlog

from proxy.auth.jwt import TokenRejectedError, TokenVerifier
from proxy.auth.keys import HmacKey, JwksKeys, KeySource, KeysUnavailableError, PemKeys
from proxy.auth.resource_metadata import metadata_url
from proxy.config import AuthConfig, ServerConfig
from proxy.context import ANONYMOUS, CallContext, Principal
from proxy.errors import AuthUnavailableError, ForbiddenError, UnauthenticatedError
from proxy.net.jwks_client import JwksClient

log = structlog.get_logger("proxy.auth")

_UNQUOTABLE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')  # RFC 6750 error_description characters


class Authenticator:
    def __init__(self, verifier: TokenVerifier, *, optional: bool, required_scopes: tuple[str, ...],
                 resource_metadata: str, jwks: JwksKeys | None = None, client: JwksClient | None = None) -> None:
        self.verifier = verifier
        self.optional = optional
        self.required_scopes = frozenset(required_scopes)
        self.resource_metadata = resource_metadata
        self.jwks = jwks
        self._client = client
        self._prefetch: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, auth: AuthConfig, server: ServerConfig, clock: Callable[[], float]) -> Authenticator | None:
        if auth.mode == "off":
            return None
        jwks = client = None
        keys: KeySource
        if auth.jwks_url:
            client = JwksClient(auth.jwks_url, auth.jwks_timeout_seconds)
            keys = jwks = JwksKeys(client.fetch, lifespan=auth.jwks_lifespan_seconds,
                                   cooldown=auth.jwks_refetch_cooldown_seconds, timeout=auth.jwks_timeout_seconds,
                                   clock=clock)
        elif auth.public_key_files:
            keys = PemKeys(auth.public_key_files)
        else:
            keys = HmacKey(auth.hmac_secret_file or "")
        verifier = TokenVerifier(keys, algorithms=auth.allowed_algorithms, issuers=auth.issuers,
                                 audience=auth.audience or (server.resource_url,), leeway=auth.leeway_seconds,
                                 roles_claim=auth.roles_claim)
        return cls(verifier, optional=auth.mode == "optional", required_scopes=auth.required_scopes,
                   resource_metadata=metadata_url(server), jwks=jwks, client=client)

    async def start(self) -> None:
        if self._client is not None:
            await self._client.start()
        if self.jwks is not None:  # warm the key cache without delaying startup
            self._prefetch = asyncio.ensure_future(self.jwks.refresh())

    async def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prefetch
        if self._client is not None:
            await self._client.close()

    async def readiness(self) -> tuple[bool, str]:
        loaded = self.jwks.loaded if self.jwks is not None else 0
        return loaded > 0, f"{loaded} signing keys loaded"

    async def principal_of(self, ctx: CallContext) -> Principal:
        """Who the bearer token says calls, holding the required scopes (ANONYMOUS without a token in optional
        mode); raises what the client gets otherwise."""
        token = self._bearer(ctx)
        if token is None:
            if self.optional:
                return ANONYMOUS
            log.info("auth.rejected", reason="no bearer token", method=ctx.method, http_method=ctx.http_method)
            raise UnauthenticatedError("Authentication required", headers=self._challenge())
        try:
            principal = await self.verifier.verify(token)
        except TokenRejectedError as rejected:
            log.info("auth.rejected", reason=rejected.reason, method=ctx.method, http_method=ctx.http_method)
            raise UnauthenticatedError(rejected.description, headers=self._challenge(
                error=rejected.error, error_description=rejected.description)) from None
        except KeysUnavailableError:
            log.warning("auth.keys_unavailable", method=ctx.method)
            raise AuthUnavailableError("Token signing keys are unavailable; try again later",
                                       headers={"Retry-After": "5"}) from None
        ctx.record.principal = principal
        missing = self.required_scopes - principal.scopes
        if missing:
            log.info("auth.forbidden", reason="insufficient scope", sub=principal.subject, missing=sorted(missing))
            description = "The access token lacks required scopes"
            raise ForbiddenError(description, data={"required_scopes": sorted(self.required_scopes)},
                                 headers=self._challenge(error="insufficient_scope", error_description=description))
        return principal

    def _bearer(self, ctx: CallContext) -> str | None:
        """The token from `Authorization: Bearer <token>`; another scheme or an empty token is rejected."""
        if not ctx.credentials:
            return None
        scheme, _, token = ctx.credentials.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            log.info("auth.rejected", reason="not a bearer token", method=ctx.method)
            description = "Expected an Authorization: Bearer token"
            raise UnauthenticatedError(description, headers=self._challenge(error="invalid_token",
                                                                            error_description=description))
        return token

    def _challenge(self, **attributes: str) -> dict[str, str]:
        """A WWW-Authenticate header value; a missing token gets no error attribute (RFC 6750 section 3.1)."""
        if self.required_scopes:
            attributes["scope"] = " ".join(sorted(self.required_scopes))
        attributes["resource_metadata"] = self.resource_metadata
        rendered = ", ".join(f'{name}="{_UNQUOTABLE.sub("", value)}"' for name, value in attributes.items())
        return {"WWW-Authenticate": f"Bearer {rendered}"}
