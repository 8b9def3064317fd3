"""Which principal owns which 2025 session: the upstream never sees callers' tokens, so only the sidecar can tell
that a session id presented with another valid token is someone else's (MCP security best practices: bind session
ids to the user). No aiohttp here."""

from __future__ import annotations

from collections import OrderedDict

from proxy.context import Principal

Owner = tuple[str | None, str, bool]  # issuer, subject, authenticated


def owner_of(principal: Principal) -> Owner:
    return principal.issuer, principal.subject, principal.authenticated


class SessionOwners:
    """Session id -> owner, bounded (least recently used dropped first).

    A session is bound when the upstream hands it out (the initialize reply), or on its first successful use when
    the sidecar never saw it handed out (it restarted, or another worker process did): trust on first use.
    """

    def __init__(self, max_sessions: int = 100_000) -> None:
        self.max_sessions = max_sessions
        self._owners: OrderedDict[str, Owner] = OrderedDict()

    def owned(self, session_id: str) -> bool:
        return session_id in self._owners

    def admits(self, session_id: str, principal: Principal) -> bool:
        """True when the session is unknown or the principal's."""
        owner = self._owners.get(session_id)
        if owner is None:
            return True
        self._owners.move_to_end(session_id)
        return owner == owner_of(principal)

    def bind(self, session_id: str, principal: Principal) -> None:
        self._owners[session_id] = owner_of(principal)
        self._owners.move_to_end(session_id)
        while len(self._owners) > self.max_sessions:
            self._owners.popitem(last=False)

    def end(self, session_id: str) -> None:
        self._owners.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._owners)
