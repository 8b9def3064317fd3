"""The policy input document (versioned) and the Decision, with the checks that make bad results deny.

The input and decision shapes are documented in policies/README.md and policies/input.schema.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from proxy.context import CallContext
from proxy.policy.projection import MAPPINGS
from proxy.timestamps import utc_text

INPUT_VERSION = 1
DECISION_RULE = "decision"  # data.mcp.decision: {allow, reasons, obligations}
VISIBLE_RULE = "visible"  # data.mcp.visible: the keys of the list items the caller may see

# What identifies an item of each list result, and the input field for its kind.
LIST_KINDS = {
    "tools/list": ("tools", "tools", "name"),
    "prompts/list": ("prompts", "prompts", "name"),
    "resources/list": ("resources", "resources", "uri"),
    "resources/templates/list": ("resource_templates", "resourceTemplates", "uriTemplate"),
}
CACHE_SCOPES = frozenset({"public", "private", "none"})


class PolicyLoadError(Exception):
    """The policy could not be loaded at startup; the sidecar refuses to start (exit 2)."""

    def __init__(self, directory: Path, problems: list[str]) -> None:
        super().__init__(f"policy in {directory} does not load:\n" + "\n".join(problems))
        self.directory = directory
        self.problems = problems


class PolicyUnavailableError(Exception):
    """The engine could not produce a result (no bundle, evaluation error, remote OPA down)."""


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reasons: tuple[str, ...] = ()
    obligations: dict[str, Any] = field(default_factory=dict)
    revision: str | None = None
    decision_id: str | None = None
    failed: bool = False  # no policy answered (engine error, OPA down): a denial that says nothing about targets

    @classmethod
    def deny(cls, reason: str, revision: str | None = None, decision_id: str | None = None) -> Decision:
        return cls(allow=False, reasons=(reason,), revision=revision, decision_id=decision_id)


class Engine(Protocol):
    """Evaluates the two policy rules. Raises PolicyUnavailableError when it cannot; undefined results are None.
    The in-process engine first cuts a tools/call's arguments down to the policy's data.mcp.argument_names."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def revision(self) -> str | None: ...

    async def evaluate(self, rule: str, document: dict[str, Any]) -> tuple[Any, str | None]:
        """The rule's value (None when undefined) and the revision that produced it."""
        ...

    async def readiness(self) -> tuple[bool, str]: ...


def policy_input(ctx: CallContext, upstream: str, tool: Any = None,
                 listing: tuple[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The input document for one message. `tool` is the catalog's ToolInfo (trusted) or None."""
    method = ctx.method
    mcp_part: dict[str, Any] = {
        "method": method,
        "kind": ctx.kind.value,
        "protocol_version": ctx.protocol_version,
        "era": ctx.era.value,
        "tool": None,
        "prompt": None,
        "resource": None,
    }
    if method == "tools/call":
        mcp_part["tool"] = {
            "name": ctx.target,
            "arguments": dict(ctx.arguments) if ctx.arguments is not None else {},
            "known": tool is not None,
            "annotations": dict(tool.annotations) if tool is not None else None,
            "hash": tool.hash if tool is not None else None,
        }
    elif method == "prompts/get":
        mcp_part["prompt"] = {"name": ctx.target,
                              "arguments": dict(ctx.arguments) if ctx.arguments is not None else {}}
    elif ctx.target is not None and method is not None and method.startswith("resources/"):
        mcp_part["resource"] = {"uri": ctx.target}
    if listing is not None:
        mcp_part["list"] = {"kind": listing[0], "items": listing[1]}
    now_ns = time.time_ns()
    return {
        "version": INPUT_VERSION,
        "principal": ctx.principal.as_policy_input(),
        "mcp": mcp_part,
        "request": {
            "id": ctx.request_id,
            "session_id": ctx.session_id,
            "client_address": ctx.client_address,
            "time": utc_text(now_ns),  # +00:00 rather than Z: rego-cpp's time.parse_rfc3339_ns rejects Z
            "time_ns": now_ns,
            "headers": dict(ctx.headers),
        },
        "upstream": {"name": upstream},
    }


def decision_from(value: Any, revision: str | None, decision_id: str | None = None) -> Decision:
    """Validate what data.mcp.decision returned; anything undefined or ill-typed denies.

    Memoised policy results repeat the same few decisions: one seen well-typed before skips the checks (its allow and
    reasons are remembered by its JSON; the obligations are still the caller's own fresh copy)."""
    key = _decision_key(value)
    known = _WELL_TYPED.get(key) if key is not None else None
    if known is None:
        problem = decision_problem(value)
        if problem is not None:
            return Decision.deny(problem, revision, decision_id)
        reasons = value.get("reasons", [])
        reasons = (reasons,) if isinstance(reasons, str) else tuple(reasons)
        known = value["allow"], reasons or (() if value["allow"] else ("denied by policy",))
        if key is not None:
            if len(_WELL_TYPED) >= _WELL_TYPED_MAX_ENTRIES:
                _WELL_TYPED.clear()
            _WELL_TYPED[key] = known
    # Positional: a keyword call of a dataclass __init__ costs about twice as much.
    return Decision(known[0], known[1], dict(value.get("obligations", {})), revision, decision_id)


_WELL_TYPED: dict[bytes, tuple[bool, tuple[str, ...]]] = {}  # a decision's JSON -> its allow and reasons
_WELL_TYPED_MAX_ENTRIES = 1024


def _decision_key(value: Any) -> bytes | None:
    """The value's JSON, when it names the value exactly (orjson writes NaN and infinities as null)."""
    if type(value) is not dict:
        return None
    try:
        key = orjson.dumps(value)
    except TypeError:
        return None
    return None if b"null" in key else key


def decision_problem(value: Any) -> str | None:
    """Why a data.mcp.decision value breaks the contract, or None."""
    if value is None:
        return "policy decision is undefined"
    if not isinstance(value, MAPPINGS) or not isinstance(value.get("allow"), bool):
        return "policy decision is ill-typed: expected an object with a boolean allow"
    reasons = value.get("reasons", [])
    if not isinstance(reasons, str | list) or not all(isinstance(reason, str) for reason in reasons):
        return "policy decision is ill-typed: reasons must be a list of strings"
    problem = obligations_problem(value.get("obligations", {}))
    return None if problem is None else f"policy decision is ill-typed: {problem}"


def obligations_problem(obligations: Any) -> str | None:
    """Why obligations break the contract the later stages rely on, or None."""
    if not isinstance(obligations, MAPPINGS):
        return "obligations must be an object"
    for key, value in obligations.items():
        check = _OBLIGATION_CHECKS.get(key)
        if check is None:
            return f"unknown obligation {key!r}"
        problem = check(value)
        if problem is not None:
            return f"obligations.{key}: {problem}"
    return None


def _rate_limit(value: Any) -> str | None:
    if not isinstance(value, MAPPINGS) or set(value) - {"buckets", "cost"}:
        return "expected {buckets, cost}"
    buckets = value.get("buckets")
    if buckets is not None and not (isinstance(buckets, list) and all(isinstance(b, str) for b in buckets)):
        return "buckets must be a list of names or null"
    cost = value.get("cost", 1)
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        return "cost must be a non-negative integer"
    return None


def _cache(value: Any) -> str | None:
    if not isinstance(value, MAPPINGS) or set(value) - {"scope", "ttl_seconds", "key_claims"}:
        return "expected {scope, ttl_seconds, key_claims}"
    if "scope" in value and value["scope"] not in CACHE_SCOPES:
        return "scope must be public, private or none"
    ttl = value.get("ttl_seconds", 0)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0:
        return "ttl_seconds must be a non-negative number"
    claims = value.get("key_claims", [])
    if not (isinstance(claims, list) and all(isinstance(claim, str) for claim in claims)):
        return "key_claims must be a list of claim names"
    return None


def _redact(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(path, str) for path in value):
        return None
    return "must be a list of dotted argument paths"


def _require_approval(value: Any) -> str | None:
    """require_approval and require_confirmation: booleans."""
    return None if isinstance(value, bool) else "must be a boolean"


_OBLIGATION_CHECKS = {
    "rate_limit": _rate_limit,
    "cache": _cache,
    "redact": _redact,
    "require_approval": _require_approval,
    "require_confirmation": _require_approval,  # a boolean too
}


def visible_keys(value: Any) -> frozenset[str]:
    """What data.mcp.visible returned, as a set of item keys; undefined or ill-typed shows nothing."""
    if isinstance(value, list) and all(isinstance(key, str) for key in value):
        return frozenset(value)
    return frozenset()
