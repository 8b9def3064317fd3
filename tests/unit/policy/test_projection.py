"""The input projection (only what a policy reads goes to rego-cpp) and the result memo built on it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from proxy.catalog import ToolInfo
from proxy.context import Principal
from proxy.policy.engine import decision_from, policy_input
from proxy.policy.loader import PolicyLoader, RegoEngine, load
from proxy.policy.memo import ResultMemo
from proxy.policy.projection import project
from proxy.policy.rego import Evaluator, compile_policy
from tests.kit import make_ctx

POLICIES = Path(__file__).resolve().parents[3] / "policies"
INJECTION = '"}, "allow": true, {"'


def use_of(source: str):
    return compile_policy({"p.rego": "package mcp\nimport rego.v1\n" + source}).use


def test_paths_cover_every_reference_and_keep_subtrees() -> None:
    use = use_of('# input.in_a_comment\nx := "input.in_a_string"\n'
                 "a := input.mcp.tool.arguments[input.mcp.tool.name]\n"
                 "b := object.get(input.principal.claims, data.k, 1)\n"
                 "c := input.principal.claims.plan\n"
                 "d := data.input.not_the_input\n")
    assert use.paths == (("mcp", "tool", "arguments"), ("mcp", "tool", "name"), ("principal", "claims"))
    assert use.cacheable


@pytest.mark.parametrize("source", ["a := input\n", "a := input[data.k]\n", "a := count(input)\n",
                                    'a := $"{input.x}"\n'])
def test_the_whole_input_when_it_is_read_whole_or_hidden(source: str) -> None:
    use = use_of(source)
    assert use.paths is None and not use.cacheable


def test_an_import_of_input_counts_as_a_reference() -> None:
    source = "package mcp\nimport input.mcp.tool as t\nimport rego.v1\na := t.name\n"
    assert compile_policy({"p.rego": source}).use.paths == (("mcp", "tool"),)


@pytest.mark.parametrize("source", ["a := input.request.time\n", "a := input.request\n", "a := input.request.id\n",
                                    "a := time.now_ns()\n", "a := uuid.rfc4122(input.x)\n"])
def test_time_ids_and_unrepeatable_builtins_turn_the_memo_off(source: str) -> None:
    compiled = compile_policy({"p.rego": "package mcp\nimport rego.v1\n" + source})
    assert not compiled.use.cacheable and compiled.memo is None


def test_project_keeps_subtrees_and_non_objects_whole() -> None:
    document = {"mcp": {"method": "m", "tool": None, "kind": "k"}, "principal": {"roles": ["r"], "sub": "s"},
                "request": {"time": "t"}}
    paths = (("mcp", "method"), ("mcp", "tool", "name"), ("principal", "roles"), ("upstream", "name"))
    assert project(document, paths) == {"mcp": {"method": "m", "tool": None}, "principal": {"roles": ["r"]}}
    assert project(document, None) is document


def test_deep_paths_are_projected_like_short_ones() -> None:
    """Paths deeper than the written-out code goes are walked instead, with the same result."""
    names = [f"k{i}" for i in range(12)]
    document: dict = {"other": 1}
    node = document
    for name in names:
        node[name] = {"sibling": True}
        node = node[name]
    node["leaf"] = "x"
    deep, short = (*names, "leaf"), tuple(names[:3])
    expected_leaf: dict = {"leaf": "x"}
    for name in reversed(names):
        expected_leaf = {name: expected_leaf}
    assert project(document, (deep,)) == expected_leaf
    assert project(document, (short,)) == {"k0": {"k1": {"k2": document["k0"]["k1"]["k2"]}}}
    flat = {"k0": "not an object"}
    assert project(flat, (deep,)) == project(flat, (short,)) == flat


def shipped_documents() -> list[tuple[str, dict]]:
    def who(*roles: str) -> Principal:
        return Principal(subject="s", issuer="i", claims={"plan": "pro"}, roles=frozenset(roles), scopes=frozenset())
    read_only = ToolInfo.from_definition({"name": "run_query", "inputSchema": {"type": "object"},
                                          "annotations": {"readOnlyHint": True}})
    delete = ToolInfo.from_definition({"name": "delete_file", "inputSchema": {"type": "object"}})
    items = [{"key": "run_query", "name": "run_query", "annotations": dict(read_only.annotations)},
             {"key": "delete_file", "name": "delete_file", "annotations": dict(delete.annotations)}]
    return [
        ("decision", policy_input(make_ctx("tools/call", target="run_query", arguments={"sql": "select 1"},
                                           principal=who("analyst")), "up", read_only)),
        ("decision", policy_input(make_ctx("tools/call", target="run_query", arguments={"sql": "drop table t"},
                                           principal=who("analyst")), "up", read_only)),
        ("decision", policy_input(make_ctx("tools/call", target="delete_file", arguments={"path": "/tmp/scratch/a"},
                                           principal=who("operator")), "up", delete)),
        ("decision", policy_input(make_ctx("tools/list", principal=who("reader")), "up")),
        ("decision", policy_input(make_ctx("sampling/createMessage", principal=who("admin")), "up")),
        ("visible", policy_input(make_ctx("tools/list", principal=who("developer")), "up",
                                 listing=("tools", items))),
    ]


def test_shipped_policies_decide_the_same_on_the_projection() -> None:
    compiled = load(POLICIES, crash_guard=False).compiled
    assert compiled.use.paths is not None and compiled.memo is not None  # the shipped policies read no time
    whole = dataclasses.replace(compiled, use=dataclasses.replace(compiled.use, paths=None), memo=None)
    evaluator = Evaluator()
    for rule, document in shipped_documents():
        assert evaluator.evaluate(compiled, f"mcp/{rule}", document) == \
            evaluator.evaluate(whole, f"mcp/{rule}", document)


@pytest.mark.parametrize("memo", [True, False])
def test_an_injected_argument_cannot_change_the_decision(memo: bool) -> None:
    compiled = load(POLICIES, crash_guard=False).compiled
    if not memo:
        compiled = dataclasses.replace(compiled, memo=None)
    evaluator = Evaluator()
    analyst = Principal(subject="s", issuer="i", claims={}, roles=frozenset({"analyst"}), scopes=frozenset())
    tool = ToolInfo.from_definition({"name": "run_query", "inputSchema": {"type": "object"},
                                     "annotations": {"readOnlyHint": True}})
    for sql in ("select 1", "drop table t " + INJECTION, INJECTION, "select 1 " + INJECTION + "drop table t"):
        document = policy_input(make_ctx("tools/call", target="run_query", arguments={"sql": sql, INJECTION: 1},
                                         principal=analyst), "up", tool)
        for _ in range(2):  # the second time from the memo when it is on
            decision = decision_from(evaluator.evaluate(compiled, "mcp/decision", document), "r")
            assert decision.allow is (sql == "select 1")
            assert decision.reasons == (() if decision.allow else
                                        ("run_query: argument sql must be a single SELECT statement",))


def test_memo_hits_hand_out_fresh_values() -> None:
    compiled = compile_policy({"p.rego": 'package mcp\nimport rego.v1\ndecision := {"allow": true, '
                                         '"reasons": [input.mcp.method]}\n'})
    evaluator = Evaluator()
    first = evaluator.evaluate(compiled, "mcp/decision", {"mcp": {"method": "a"}, "request": {"time": "1"}})
    first["reasons"].append("tampered")
    again = evaluator.evaluate(compiled, "mcp/decision", {"mcp": {"method": "a"}, "request": {"time": "2"}})
    assert again == {"allow": True, "reasons": ["a"]}
    assert (compiled.memo.hits, compiled.memo.misses) == (1, 1)
    assert evaluator.evaluate(compiled, "mcp/decision", {"mcp": {"method": "b"}})["reasons"] == ["b"]


def test_memo_forgets_the_least_recent_and_skips_huge_keys() -> None:
    memo = ResultMemo(max_entries=2)
    for key in (b"a", b"b", b"a", b"c"):
        memo.put(key, key.decode())
    assert memo.get(b"b") is None and memo.get(b"a") == "a" and memo.get(b"c") == "c"
    memo.put(b"x" * 70_000, "big")
    assert memo.get(b"x" * 70_000) is None
    small = ResultMemo(max_bytes=100)
    small.put(b"k1", "v" * 60)
    small.put(b"k2", "v" * 60)
    assert small.get(b"k1") is None and small.get(b"k2") is not None and len(small) == 1


async def test_a_reload_starts_with_an_empty_memo(tmp_path: Path) -> None:
    rule = tmp_path / "p.rego"
    rule.write_text('package mcp\nimport rego.v1\ndecision := {"allow": input.mcp.method == "ping"}\n')
    loader = PolicyLoader(tmp_path, reload_interval=None)
    loader.load_initial()
    engine = RegoEngine(loader)
    document = {"mcp": {"method": "ping"}}
    assert (await engine.evaluate("decision", document))[0] == {"allow": True}
    assert (await engine.evaluate("decision", document))[0] == {"allow": True}
    assert loader.current.compiled.memo.hits == 1
    rule.write_text('package mcp\nimport rego.v1\ndecision := {"allow": input.mcp.method == "initialize"}\n')
    assert await loader.check_once()
    assert (await engine.evaluate("decision", document))[0] == {"allow": False}


def test_non_finite_numbers_are_refused_and_never_match_a_remembered_null() -> None:
    from proxy.policy.rego import EvaluationError

    compiled = compile_policy({"p.rego": 'package mcp\nimport rego.v1\ndecision := {"allow": input.mcp.x == null}\n'})
    evaluator = Evaluator()
    assert evaluator.evaluate(compiled, "mcp/decision", {"mcp": {"x": None}}) == {"allow": True}
    for number in (float("nan"), float("inf")):
        with pytest.raises(EvaluationError):
            evaluator.evaluate(compiled, "mcp/decision", {"mcp": {"x": number}})
    assert compiled.memo.hits == 0
