"""The generated copy and __init__ of frozen slotted dataclasses, held to dataclasses.replace and __init__."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from proxy import mcp
from proxy.context import ANONYMOUS, CallContext, CallRecord, Principal
from proxy.fast_frozen import field_copier, install_fast_init
from tests.kit import make_ctx


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    count: int = 3
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FastSample:
    name: str
    count: int = 3
    tags: list[str] = field(default_factory=list)


install_fast_init(FastSample)


@pytest.mark.parametrize("args", [("a",), ("a", 5), ("a", 5, ["x"])])
def test_the_fast_init_matches_the_dataclass_init(args: tuple[Any, ...]) -> None:
    assert dataclasses.astuple(FastSample(*args)) == dataclasses.astuple(Sample(*args))
    assert FastSample(name="b", tags=["y"]) == FastSample("b", 3, ["y"])


def test_the_fast_init_calls_each_factory_per_instance_and_keeps_required_arguments() -> None:
    first, second = FastSample("a"), FastSample("b")
    assert first.tags == [] and first.tags is not second.tags
    with pytest.raises(TypeError):
        FastSample()  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.name = "changed"  # type: ignore[misc]


def test_the_copier_copies_every_field() -> None:
    source = FastSample("a", 7, ["t"])
    target = object.__new__(FastSample)
    field_copier(FastSample)(source, target)
    assert target == source


CHANGES: list[dict[str, Any]] = [
    {},
    {"principal": Principal(subject="alice", issuer="https://idp", claims={}, scopes=frozenset({"a"}),
                            roles=frozenset())},
    {"credentials": None, "upstream_headers": {"x-identity": "token"}},
    {"obligations": {"cache": {"scope": "public"}}, "record": CallRecord()},
    {"target": "other", "arguments": {"text": "hi"}, "session_id": "s-1", "http_method": "GET"},
    {"kind": mcp.Kind.NOTIFICATION, "request_id": None, "message": {"jsonrpc": "2.0", "method": "x"}, "body": b"{}"},
]


@pytest.mark.parametrize("changes", CHANGES)
def test_evolve_equals_dataclasses_replace(changes: dict[str, Any]) -> None:
    ctx = make_ctx(credentials="Bearer secret", arguments={"a": 1})
    assert ctx.evolve(**changes) == dataclasses.replace(ctx, **changes)
    assert ctx.principal is ANONYMOUS  # the original is untouched


def test_evolve_drops_the_received_bytes_with_a_changed_message_and_refuses_unknown_fields() -> None:
    ctx = make_ctx().evolve(body=b'{"raw": true}')
    changed = ctx.evolve(message={"jsonrpc": "2.0", "id": 2, "method": "ping"})
    assert changed.body is None and ctx.body == b'{"raw": true}'
    with pytest.raises(TypeError, match="no field 'nope'"):
        ctx.evolve(nope=1)


def test_the_context_init_fills_defaults_like_the_dataclass() -> None:
    ctx = make_ctx()
    assert isinstance(ctx, CallContext) and ctx.record is not make_ctx().record
    assert ctx.principal is ANONYMOUS and ctx.http_method == "POST" and ctx.obligations == {}
