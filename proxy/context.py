"""The CallContext a message carries through the stages, and the record the stages fill in."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy import mcp
from proxy.fast_frozen import field_copier, install_fast_init, slot_setters


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by exact name first (namespaced claims contain dots), else by dotted path; None when absent.

    The one way claims are named everywhere: auth.roles_claim, rate-limit `claim:` keys and matches, cache key_claims.
    """
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as verified by the auth stage."""

    subject: str
    issuer: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    authenticated: bool = True

    def as_policy_input(self) -> dict[str, Any]:
        return {
            "sub": self.subject,
            "issuer": self.issuer,
            "claims": dict(self.claims),
            "scopes": sorted(self.scopes),
            "roles": sorted(self.roles),
            "authenticated": self.authenticated,
        }


ANONYMOUS = Principal(subject="anonymous", authenticated=False)


@dataclass(slots=True)
class CallRecord:
    """What the stages decided about one message; read by audit and tracing when the reply is done.

    Mutable on purpose: it is the one shared notebook of a call, while the context itself stays frozen.
    """

    _decision_id: str | None = field(default=None, repr=False)  # made when first asked for (see decision_id)
    outcome: str = "allowed"  # allowed | denied | limited | cached | upstream_error | rejected
    error_type: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    upstream_status: int | None = None
    policy_decision: str | None = None  # allow | deny | shadow-disagree...
    policy_reasons: tuple[str, ...] = ()
    policy_revision: str | None = None
    obligations: dict[str, Any] = field(default_factory=dict)
    rate_limit: dict[str, Any] | None = None
    cache_status: str | None = None  # hit | miss | bypass | stored
    approval_id: str | None = None
    approver: str | None = None  # who decided the call's approval (admin credential name, JWT subject, "link")
    principal: Principal | None = None  # who the auth stage verified; outer stages (audit, tracing) read it here
    redact: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def decision_id(self) -> str:
        """The call's id in audit events, policy input and decision logs; only made when one of them asks. 128
        random bits as hex, like uuid4().hex, without its UUID object (~2 us) or its getrandom() syscall, which
        releases the GIL on every call (telemetry export threads then take it). An id, not a secret."""
        if self._decision_id is None:
            self._decision_id = f"{random.getrandbits(128):032x}"
        return self._decision_id

    def fail(self, outcome: str, error_type: str, message: str | None = None) -> None:
        self.outcome = outcome
        self.error_type = error_type
        self.error_message = message


@dataclass(frozen=True, slots=True)
class CallContext:
    """One client message on its way through the pipeline. Derive changes with evolve()."""

    kind: mcp.Kind
    message: dict[str, Any]
    body: bytes | None  # the bytes as received; None once the message was changed
    method: str | None
    request_id: Any
    protocol_version: str
    era: mcp.Era
    target: str | None
    arguments: Mapping[str, Any] | None
    session_id: str | None
    headers: Mapping[str, str]  # allow-listed request headers, lower-case names
    client_address: str | None
    http_method: str = "POST"
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    # The caller's raw Authorization header, for the auth stage only: never forwarded, logged or shown in repr.
    credentials: str | None = field(default=None, repr=False)
    principal: Principal = ANONYMOUS
    upstream_headers: Mapping[str, str] = field(default_factory=dict)  # extra headers for the upstream call
    # What policy asked the later stages to do (rate_limit, cache, redact, require_approval); see policies/README.md.
    obligations: Mapping[str, Any] = field(default_factory=dict)
    record: CallRecord = field(default_factory=CallRecord)

    @property
    def is_request(self) -> bool:
        return self.kind is mcp.Kind.REQUEST

    @property
    def params(self) -> dict[str, Any]:
        return mcp.params_of(self.message)

    def evolve(self, **changes: Any) -> CallContext:
        """A copy with some fields changed. Every stage that derives a context pays this, so the copy is
        straight-line code generated once (proxy/fast_frozen.py): 2.9 us here, against 5.2 for a loop over the
        fields (dataclasses.replace costs more still)."""
        if "message" in changes and "body" not in changes:
            changes["body"] = None
        copy = object.__new__(CallContext)
        _copy_fields(self, copy)
        for name, value in changes.items():
            setter = _SETTERS.get(name)
            if setter is None:
                raise TypeError(f"CallContext has no field {name!r}")
            setter(copy, value)
        return copy

    def outbound_body(self) -> bytes:
        """The body to send upstream: the original bytes unless a stage changed the message."""
        return self.body if self.body is not None else orjson.dumps(self.message)

    def with_meta(self, **entries: Any) -> CallContext:
        """A context whose message carries extra params._meta entries (e.g. trace context)."""
        params = dict(self.params)
        meta = dict(mcp.meta_of(params))
        meta.update(entries)
        params["_meta"] = meta
        return self.evolve(message={**self.message, "params": params})


_copy_fields = field_copier(CallContext)
_SETTERS = slot_setters(CallContext)
install_fast_init(CallContext)
