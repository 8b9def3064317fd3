"""proxy/auth/sessions.py: which principal owns which 2025 session."""

from __future__ import annotations

from proxy.auth.sessions import SessionOwners
from proxy.context import ANONYMOUS, Principal

RITA = Principal(subject="rita", issuer="https://idp.test")
ADA = Principal(subject="ada", issuer="https://idp.test")


def test_a_bound_session_admits_only_its_owner() -> None:
    owners = SessionOwners()
    assert owners.admits("s1", ADA) and not owners.owned("s1")  # unknown: nobody's yet
    owners.bind("s1", RITA)
    assert owners.admits("s1", RITA)
    assert not owners.admits("s1", ADA)
    assert not owners.admits("s1", ANONYMOUS)
    assert not owners.admits("s1", Principal(subject="rita", issuer="https://other.test"))  # same sub, other IdP


def test_ending_a_session_forgets_it_and_the_book_is_bounded() -> None:
    owners = SessionOwners(max_sessions=2)
    owners.bind("s1", RITA)
    owners.end("s1")
    assert owners.admits("s1", ADA) and len(owners) == 0
    owners.bind("a", RITA)
    owners.bind("b", RITA)
    assert owners.admits("a", RITA)  # a used last: b is now the oldest
    owners.bind("c", ADA)
    assert len(owners) == 2 and owners.owned("a") and not owners.owned("b")
