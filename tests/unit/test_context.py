"""The CallContext (frozen, evolve, outbound body, _meta), the Principal's policy view, claims and the CallRecord."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from proxy import mcp
from proxy.context import ANONYMOUS, CallContext, CallRecord, Principal, claim_at
from tests.kit import make_ctx


def test_claim_at_prefers_the_exact_name_then_walks_dots() -> None:
    claims = {"https://example.com/roles": ["a"], "realm_access": {"roles": ["ops"]}, "a.b": 1, "a": {"b": 2}}
    assert claim_at(claims, "https://example.com/roles") == ["a"]
    assert claim_at(claims, "realm_access.roles") == ["ops"]
    assert claim_at(claims, "a.b") == 1  # the exact namespaced claim wins over the path


@pytest.mark.parametrize("path", ["missing", "realm_access.missing", "realm_access.roles.0", "sub.x"])
def test_claim_at_is_none_for_what_is_absent(path: str) -> None:
    assert claim_at({"realm_access": {"roles": ["ops"]}, "sub": "u"}, path) is None


def test_principal_policy_input_is_sorted_and_plain() -> None:
    principal = Principal("u", issuer="https://idp", claims={"x": 1}, scopes=frozenset({"b", "a"}),
                          roles=frozenset({"r2", "r1"}))
    assert principal.as_policy_input() == {"sub": "u", "issuer": "https://idp", "claims": {"x": 1},
                                           "scopes": ["a", "b"], "roles": ["r1", "r2"], "authenticated": True}
    assert ANONYMOUS.as_policy_input()["authenticated"] is False and ANONYMOUS.subject == "anonymous"


def test_a_context_is_frozen() -> None:
    ctx = make_ctx()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.method = "x"  # type: ignore[misc]


def test_evolve_changes_only_what_it_is_told_and_shares_the_record() -> None:
    ctx = make_ctx(session_id="s")
    principal = Principal("alice")
    copy = ctx.evolve(principal=principal, credentials=None)
    assert copy is not ctx and copy.principal is principal and ctx.principal is ANONYMOUS
    assert (copy.session_id, copy.method, copy.started) == ("s", ctx.method, ctx.started)
    assert copy.record is ctx.record  # one notebook per call


def test_evolve_refuses_unknown_fields() -> None:
    with pytest.raises(TypeError, match="no field 'methd'"):
        make_ctx().evolve(methd="x")


def test_a_changed_message_drops_the_original_bytes() -> None:
    ctx = make_ctx(body=b'{"original": true}')
    assert ctx.outbound_body() == b'{"original": true}'
    changed = ctx.evolve(message={**ctx.message, "id": 99})
    assert changed.body is None and orjson.loads(changed.outbound_body())["id"] == 99
    both = ctx.evolve(message={"x": 1}, body=b"kept")
    assert both.outbound_body() == b"kept"


def test_outbound_body_serialises_the_message_when_there_are_no_bytes() -> None:
    ctx = make_ctx("tools/call", target="add", arguments={"a": 1})
    assert orjson.loads(ctx.outbound_body()) == ctx.message


def test_with_meta_adds_entries_without_touching_the_original() -> None:
    ctx = make_ctx("tools/call", target="add", arguments={"a": 1})
    ctx = ctx.evolve(message={**ctx.message, "params": {**ctx.params, "_meta": {"progressToken": 5}}},
                     body=b"{}")
    traced = ctx.with_meta(traceparent="00-abc-def-01")
    assert traced.params["_meta"] == {"progressToken": 5, "traceparent": "00-abc-def-01"}
    assert traced.params["name"] == "add" and traced.params["arguments"] == {"a": 1}
    assert ctx.params["_meta"] == {"progressToken": 5} and traced.body is None


def test_with_meta_on_a_message_without_params() -> None:
    ctx = make_ctx("ping", target=None)
    ctx = ctx.evolve(message={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert ctx.params == {}
    assert ctx.with_meta(k="v").message["params"] == {"_meta": {"k": "v"}}


def test_params_of_a_non_object_is_empty() -> None:
    ctx = make_ctx().evolve(message={"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1, 2]})
    assert ctx.params == {}


def test_is_request_follows_kind() -> None:
    assert make_ctx().is_request
    assert not make_ctx(request_id=None).is_request
    assert not make_ctx(kind=mcp.Kind.STREAM).is_request


def test_credentials_never_show_in_repr() -> None:
    assert "secret-token" not in repr(make_ctx(credentials="Bearer secret-token"))


def test_every_call_gets_its_own_record_and_decision_id() -> None:
    first, second = make_ctx(), make_ctx()
    assert first.record is not second.record
    ids = {CallRecord().decision_id for _ in range(100)}
    assert len(ids) == 100 and all(len(value) == 32 and int(value, 16) >= 0 for value in ids)


def test_record_fail_sets_outcome_type_and_message() -> None:
    record = CallRecord()
    assert record.outcome == "allowed" and record.error_type is None
    record.fail("denied", "policy_denied", "no")
    assert (record.outcome, record.error_type, record.error_message) == ("denied", "policy_denied", "no")
    record.fail("rejected", "x")
    assert record.error_message is None


def test_contexts_are_built_with_fresh_defaults() -> None:
    ctx = CallContext(kind=mcp.Kind.REQUEST, message={}, body=None, method="ping", request_id=1,
                      protocol_version=mcp.MODERN_VERSION, era=mcp.Era.MODERN, target=None, arguments=None,
                      session_id=None, headers={}, client_address=None)
    assert ctx.http_method == "POST" and ctx.principal is ANONYMOUS and ctx.obligations == {}
    assert ctx.upstream_headers == {} and ctx.credentials is None
