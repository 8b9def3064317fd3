"""Admin credentials without HTTP: the tokens file format and the permission order."""

from __future__ import annotations

import pytest

from proxy.auth.admin import AdminAuth, AdminDenied, AdminIdentity, parse_tokens
from proxy.config import AdminAuthConfig


def test_tokens_file_lines_and_comments() -> None:
    tokens = parse_tokens("# comment\n\nalice approver aaaaaaaaaaaaaaaa  # on call\nci viewer bbbbbbbbbbbbbbbb\n")
    assert [(t.name, t.permission) for t in tokens] == [("alice", "approver"), ("ci", "viewer")]


@pytest.mark.parametrize("line", ["alice root aaaaaaaaaaaaaaaa", "alice approver", "alice approver short",
                                  "a b c d"])
def test_bad_lines_name_their_number_never_the_token(line: str) -> None:
    with pytest.raises(ValueError, match="line 2") as raised:
        parse_tokens("ok viewer cccccccccccccccc\n" + line)
    assert "aaaaaaaaaaaaaaaa" not in str(raised.value)


def test_permissions_include_the_lower_ones() -> None:
    approver = AdminIdentity("a", "approver", "token")
    assert approver.allows("viewer") and approver.allows("approver") and not approver.allows("admin")


async def test_identify(tmp_path) -> None:
    path = tmp_path / "tokens"
    path.write_text("alice admin aaaaaaaaaaaaaaaa\n")
    auth = AdminAuth(AdminAuthConfig(tokens_file=str(path)), None)
    assert (await auth.identify("Bearer aaaaaaaaaaaaaaaa")).name == "alice"
    for header in (None, "", "Basic aaaaaaaaaaaaaaaa", "Bearer aaaaaaaaaaaaaaab", "Bearer a.b.c"):
        with pytest.raises(AdminDenied) as denied:
            await auth.identify(header)
        assert denied.value.status == 401


async def test_jwt_without_a_verifier_refuses_every_jwt() -> None:
    auth = AdminAuth(AdminAuthConfig(jwt=True), None)  # auth.mode off: no keys to verify with
    with pytest.raises(AdminDenied) as denied:
        await auth.identify("Bearer aaa.bbb.ccc")
    assert denied.value.status == 401
