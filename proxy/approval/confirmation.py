"""User confirmation of a call (`require_confirmation`), the 2026-07-28 way: the sidecar answers the first call with
an `input_required` result asking the caller's user (an elicitation form), and lets the retry through only when
it carries the user's yes and the sidecar's own `requestState`. No HTTP here.

The state is `<payload>.<signature>` (base64url, HMAC-SHA256): it names the principal, the hash of the exact
arguments, the policy revision, an expiry and a nonce. A state that was forged or altered, has expired, names another
principal, other arguments or another policy revision, or was used once already is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

INPUT_KEY = "mcp-sidecar/confirm"  # our entry in inputRequests / inputResponses
STATE_PREFIX = "mcp-sidecar.confirm."
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
MAX_USED = 100_000


class ConfirmationRefused(Exception):
    """The retry does not carry a valid, fresh, unused state and the user's yes."""


@dataclass(frozen=True, slots=True)
class Binding:
    principal: str  # issuer and subject
    arguments_hash: str
    policy_revision: str | None


def can_elicit(params: Mapping[str, Any]) -> bool:
    """Whether the 2026-07-28 client declared the elicitation capability (form mode) in this request."""
    meta = params.get("_meta")
    capabilities = meta.get(META_CAPABILITIES) if isinstance(meta, Mapping) else None
    elicitation = capabilities.get("elicitation") if isinstance(capabilities, Mapping) else None
    if not isinstance(elicitation, Mapping):
        return False
    return not elicitation or "form" in elicitation  # {} means form mode (the spec's default)


def is_our_retry(params: Mapping[str, Any]) -> bool:
    state = params.get("requestState")
    return isinstance(state, str) and state.startswith(STATE_PREFIX)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Confirmations:
    def __init__(self, key: bytes | None, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.key = key or os.urandom(32)  # without a shared key, a retry must come back to this process
        self.ttl = ttl_seconds
        self.clock = clock
        self._used: dict[str, float] = {}  # nonce -> expiry

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self.key, b"confirm." + payload.encode(), hashlib.sha256).digest())

    def ask(self, binding: Binding, tool: str | None) -> dict[str, Any]:
        """The input_required result for the first call."""
        payload = _b64(orjson.dumps({"p": binding.principal, "h": binding.arguments_hash,
                                     "r": binding.policy_revision, "exp": self.clock() + self.ttl,
                                     "n": _b64(os.urandom(12))}))
        question = {"mode": "form", "message": f"The tool {tool!r} asks to run with these arguments. Run it?",
                    "requestedSchema": {"type": "object", "required": ["confirm"], "properties": {
                        "confirm": {"type": "boolean", "title": "Run this call", "default": False}}}}
        return {"resultType": "input_required",
                "inputRequests": {INPUT_KEY: {"method": "elicitation/create", "params": question}},
                "requestState": f"{STATE_PREFIX}{payload}.{self._mac(payload)}"}

    def check(self, params: Mapping[str, Any], binding: Binding) -> None:
        """Raises ConfirmationRefused unless the retry's state is ours, fresh, unused and bound to this call, and
        the user accepted."""
        claims = self._claims(str(params.get("requestState", "")))
        if (claims.get("p"), claims.get("h"), claims.get("r")) != (binding.principal, binding.arguments_hash,
                                                                   binding.policy_revision):
            raise ConfirmationRefused("the confirmation was given for another call")
        nonce = str(claims.get("n"))
        self._forget_expired()
        if nonce in self._used:
            raise ConfirmationRefused("the confirmation was used already")
        responses = params.get("inputResponses")
        answer = responses.get(INPUT_KEY) if isinstance(responses, Mapping) else None
        if not isinstance(answer, Mapping) or answer.get("action") != "accept" \
                or not isinstance(answer.get("content"), Mapping) or answer["content"].get("confirm") is not True:
            self._used[nonce] = float(claims["exp"])
            raise ConfirmationRefused("the user did not confirm the call")
        if len(self._used) >= MAX_USED:
            raise ConfirmationRefused("too many confirmations in flight; ask again")
        self._used[nonce] = float(claims["exp"])

    def _claims(self, state: str) -> dict[str, Any]:
        payload, _, signature = state.removeprefix(STATE_PREFIX).partition(".")
        if not payload or not hmac.compare_digest(self._mac(payload), signature):
            raise ConfirmationRefused("the confirmation state is not valid")
        try:
            claims = orjson.loads(_unb64(payload))
            expires = float(claims["exp"])
        except (ValueError, KeyError, TypeError):
            raise ConfirmationRefused("the confirmation state is not valid") from None
        if self.clock() >= expires:
            raise ConfirmationRefused("the confirmation has expired; ask again")
        return claims

    def _forget_expired(self) -> None:
        now = self.clock()
        if len(self._used) > 1000:
            self._used = {nonce: until for nonce, until in self._used.items() if until > now}


def stripped(params: Mapping[str, Any]) -> dict[str, Any]:
    """The call's params without the sidecar's confirmation round (our state and our input response)."""
    rest = {key: value for key, value in params.items() if key not in ("requestState", "inputResponses")}
    responses = params.get("inputResponses")
    if isinstance(responses, Mapping):
        others = {key: value for key, value in responses.items() if key != INPUT_KEY}
        if others:
            rest["inputResponses"] = others
    return rest
