"""HMAC signatures of webhook notifications, and one-time approve/deny links. No HTTP here.

Webhook: `X-Sidecar-Signature: v1=<hex>` is HMAC-SHA256(secret, "<X-Sidecar-Timestamp>.<body>"), the timestamp in
whole Unix seconds. `verify_webhook` is the receiver's side (docs/admin.md): it refuses a body signed outside the
replay window.

A link token is `<payload>.<signature>`, both base64url: the payload names the approval id, the hash of the exact
arguments, the verdict and the expiry (the end of the wait). A link works once: deciding ends the approval, so a
second use finds nothing pending.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson

SIGNATURE_HEADER = "X-Sidecar-Signature"
TIMESTAMP_HEADER = "X-Sidecar-Timestamp"
REPLAY_WINDOW_SECONDS = 300


def sign_webhook(secret: bytes, timestamp: int, body: bytes) -> str:
    """The value of X-Sidecar-Signature."""
    return "v1=" + hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_webhook(secret: bytes, timestamp: str, signature: str, body: bytes, *,
                   window_seconds: float = REPLAY_WINDOW_SECONDS, now: float | None = None) -> bool:
    """True when `signature` signs `timestamp` and `body` with `secret` and the timestamp lies within
    `window_seconds` of `now` (a replayed old notification is refused)."""
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > window_seconds:
        return False
    return hmac.compare_digest(sign_webhook(secret, int(timestamp), body), signature)


@dataclass(frozen=True, slots=True)
class LinkClaim:
    approval_id: str
    arguments_hash: str
    approve: bool
    expires: float  # Unix seconds


class LinkRefused(Exception):
    """A link token that is not ours, was changed, or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, b"approval-link." + payload.encode(), hashlib.sha256).digest())


def make_link_token(secret: bytes, claim: LinkClaim) -> str:
    payload = _b64(orjson.dumps({"id": claim.approval_id, "h": claim.arguments_hash, "ok": claim.approve,
                                 "exp": int(claim.expires)}))
    return f"{payload}.{_mac(secret, payload)}"


def read_link_token(secret: bytes, token: str, now: float | None = None) -> LinkClaim:
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(_mac(secret, payload), signature):
        raise LinkRefused("the link is not valid")
    try:
        data = orjson.loads(_unb64(payload))
        claim = LinkClaim(str(data["id"]), str(data["h"]), bool(data["ok"]), float(data["exp"]))
    except (ValueError, KeyError, TypeError):
        raise LinkRefused("the link is not valid") from None
    if (time.time() if now is None else now) >= claim.expires:
        raise LinkRefused("the link has expired")
    return claim
