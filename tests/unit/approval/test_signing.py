"""Webhook signatures and one-time link tokens."""

from __future__ import annotations

import time

import pytest

from proxy.approval.arguments import arguments_hash, shown_arguments
from proxy.approval.signing import (
    LinkClaim,
    LinkRefused,
    make_link_token,
    read_link_token,
    sign_webhook,
    verify_webhook,
)

SECRET = b"s" * 32


def test_a_signed_body_verifies_within_the_window_only() -> None:
    body = b'{"type":"approval.pending"}'
    signature = sign_webhook(SECRET, 1_000_000, body)
    assert signature.startswith("v1=")
    assert verify_webhook(SECRET, "1000000", signature, body, now=1_000_100)
    assert not verify_webhook(SECRET, "1000000", signature, body, now=1_000_301)  # a replay, too late
    assert not verify_webhook(SECRET, "1000001", signature, body, now=1_000_100)  # another timestamp
    assert not verify_webhook(SECRET, "1000000", signature, body + b" ", now=1_000_100)
    assert not verify_webhook(b"t" * 32, "1000000", signature, body, now=1_000_100)
    assert not verify_webhook(SECRET, "-5", signature, body, now=1_000_100)


def test_link_tokens_are_bound_and_expire() -> None:
    claim = LinkClaim("id1", "sha256:abc", True, 2000.0)
    token = make_link_token(SECRET, claim)
    assert read_link_token(SECRET, token, now=1999) == claim
    with pytest.raises(LinkRefused, match="expired"):
        read_link_token(SECRET, token, now=2000)
    payload, signature = token.split(".")
    forged = make_link_token(b"x" * 32, LinkClaim("id1", "sha256:abc", True, 2000.0))
    for bad in (forged, payload + "." + signature[:-2] + "AA", "garbage", "", payload):
        with pytest.raises(LinkRefused):
            read_link_token(SECRET, bad, now=1000)


def test_the_hash_covers_tool_and_every_argument() -> None:
    base = arguments_hash("tools/call", "delete_file", {"path": "/a", "force": True})
    assert base == arguments_hash("tools/call", "delete_file", {"force": True, "path": "/a"})  # key order
    assert base != arguments_hash("tools/call", "delete_file", {"path": "/b", "force": True})
    assert base != arguments_hash("tools/call", "move_file", {"path": "/a", "force": True})


def test_shown_arguments() -> None:
    arguments = {"path": "/a", "auth": {"password": "p"}}
    assert shown_arguments(arguments, "redacted", ("auth.password",)) == {"path": "/a",
                                                                          "auth": {"password": "[redacted]"}}
    assert shown_arguments(arguments, "none", ()) is None
    assert shown_arguments(arguments, "full", ("auth.password",)) == arguments


def test_the_verifier_in_docs_admin_md_accepts_what_the_sidecar_signs() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "admin.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(snippet, namespace)  # the documented example, as written
    body, stamp = b'{"type":"approval.decided"}', int(time.time())
    headers = {"X-Sidecar-Timestamp": str(stamp), "X-Sidecar-Signature": sign_webhook(SECRET, stamp, body)}
    assert namespace["verify"](SECRET, headers, body)
    assert not namespace["verify"](SECRET, headers, body + b"x")
    assert not namespace["verify"](SECRET, {**headers, "X-Sidecar-Timestamp": str(stamp - 301)}, body)
