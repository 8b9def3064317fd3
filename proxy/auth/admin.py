"""Who uses the admin listener: a static bearer token from a file, or a JWT carrying an admin role or scope.

No HTTP here: the admin app hands over the `Authorization` header and gets an AdminIdentity, or an AdminDenied
saying whether the client gets 401 (no or bad credential) or 403 (a credential without the permission).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import structlog

from proxy.auth.jwt import TokenRejectedError, TokenVerifier
from proxy.auth.keys import KeysUnavailableError
from proxy.config import PERMISSIONS, AdminAuthConfig, Permission
from proxy.secret_files import SecretFile

log = structlog.get_logger("proxy.admin")


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    name: str  # the token's name, or the JWT's subject: what audit records as the approver
    permission: Permission
    source: str  # "token" | "jwt" | "open" (no admin.auth) | "link" (a one-time link)

    def allows(self, needed: Permission) -> bool:
        return PERMISSIONS.index(self.permission) >= PERMISSIONS.index(needed)


OPEN = AdminIdentity("unauthenticated", "admin", "open")  # a loopback listener without admin.auth


class AdminDenied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class StaticToken:
    name: str
    permission: Permission
    digest: bytes  # sha256 of the token: compared in constant time, whatever the lengths


def parse_tokens(text: str) -> list[StaticToken]:
    """`NAME PERMISSION TOKEN` lines; a bad line raises ValueError naming its number (never its token)."""
    tokens = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or parts[1] not in PERMISSIONS:
            raise ValueError(f"line {number}: expected NAME PERMISSION TOKEN, permission one of {list(PERMISSIONS)}")
        name, permission, token = parts
        if len(token) < 16:
            raise ValueError(f"line {number}: the token of {name!r} is shorter than 16 characters")
        tokens.append(StaticToken(name, permission, hashlib.sha256(token.encode()).digest()))  # type: ignore[arg-type]
    return tokens


class AdminAuth:
    def __init__(self, config: AdminAuthConfig, verifier: TokenVerifier | None) -> None:
        self.config = config
        self.verifier = verifier if config.jwt else None
        self._file = SecretFile(config.tokens_file, check_interval=config.check_seconds) if config.tokens_file \
            else None
        self._tokens: list[StaticToken] = []
        self._version = -1
        if self._file is not None:
            self._static()  # a bad file fails at startup

    def _static(self) -> list[StaticToken]:
        """The file's tokens, parsed again only when it changed; a bad new version keeps the last good one."""
        assert self._file is not None
        content = self._file.read_text()
        if self._file.version != self._version:
            try:
                self._tokens = parse_tokens(content)
            except ValueError as error:
                if self._version == -1:
                    raise ValueError(f"{self._file.path}: {error}") from None
                log.error("admin.tokens_file_invalid", path=self._file.path, error=str(error))
            self._version = self._file.version
        return self._tokens

    async def identify(self, authorization: str | None) -> AdminIdentity:
        token = _bearer(authorization)
        if self._file is not None:
            digest = hashlib.sha256(token.encode()).digest()
            found = None
            for entry in self._static():  # every entry compared: the time does not tell which one matched
                if hmac.compare_digest(entry.digest, digest):
                    found = entry
            if found is not None:
                return AdminIdentity(found.name, found.permission, "token")
        if self.verifier is not None and token.count(".") == 2:
            return await self._jwt(token)
        raise AdminDenied(401, "invalid admin credential")

    async def _jwt(self, token: str) -> AdminIdentity:
        assert self.verifier is not None
        try:
            principal = await self.verifier.verify(token)
        except TokenRejectedError as rejected:
            raise AdminDenied(401, rejected.description) from None
        except KeysUnavailableError:
            raise AdminDenied(503, "token signing keys are unavailable") from None
        held = principal.roles | principal.scopes
        granted = [p for p in PERMISSIONS if self.config.jwt_permissions.get(p) in held]
        if not granted:
            raise AdminDenied(403, "the token carries no admin role or scope")
        return AdminIdentity(principal.subject, granted[-1], "jwt")


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AdminDenied(401, "admin credential required")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AdminDenied(401, "expected an Authorization: Bearer credential")
    return token
