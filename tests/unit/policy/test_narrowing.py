"""data.mcp.argument_names: which policies define it, and what a tools/call's decision is then handed."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.catalog import ToolInfo
from proxy.context import Principal
from proxy.policy import narrowing
from proxy.policy.engine import policy_input
from proxy.policy.loader import load
from proxy.policy.rego import EvaluationError, Evaluator, compile_policy
from tests.kit import make_ctx

POLICIES = Path(__file__).resolve().parents[3] / "policies"
CALL = {"mcp": {"method": "tools/call", "tool": {"name": "t", "arguments": {"b": 2, "a": 1}, "known": True}},
        "principal": {"roles": ["r"]}}
ILL_TYPED = {"p.rego": 'package mcp\nimport rego.v1\ndecision := {"allow": true}\nargument_names := "a"\n'}


@pytest.mark.parametrize(("source", "defined"), [
    ('package mcp\nargument_names contains "a" if input.x\n', True),
    ("package mcp\n  argument_names := set()\n", True),
    ("package mcp.argument_names\nx := 1\n", True),
    ('package mcp\n# argument_names contains "a"\nx := "argument_names"\n', False),
    ('package other\nargument_names contains "a"\n', False),
    ("package mcp\nargument_names_too := 1\n", False),
])
def test_which_policies_define_the_entrypoint(source: str, defined: bool) -> None:
    assert compile_policy({"p.rego": source}).narrows_arguments is defined


def test_the_names_are_asked_without_the_arguments_and_the_rest_stay_behind() -> None:
    asked = []

    def names_for(bare):
        asked.append(bare)
        return ["z", "a"]

    narrowed = narrowing.narrow(CALL, names_for)
    assert asked == [{**CALL, "mcp": {**CALL["mcp"], "tool": {"name": "t", "known": True}}}]
    assert narrowed["mcp"]["tool"] == {"name": "t", "arguments": {"a": 1}, "known": True}  # absent z stays absent
    assert CALL["mcp"]["tool"]["arguments"] == {"b": 2, "a": 1}  # the caller's document is not changed


@pytest.mark.parametrize("value", [None, ["*"], ["a", "*"]])
def test_undefined_or_the_wildcard_keep_every_argument(value) -> None:
    assert narrowing.narrow(CALL, lambda bare: value) is CALL


@pytest.mark.parametrize("document", [{"mcp": {"method": "tools/list", "tool": None}}, {},
                                      {"mcp": {"tool": {"name": "t", "arguments": "not an object"}}}])
def test_other_documents_are_neither_narrowed_nor_asked_about(document) -> None:
    assert narrowing.call_tool(document) is None
    assert Evaluator().evaluate_narrowed(compile_policy(ILL_TYPED), "mcp/decision", document) == {"allow": True}


@pytest.mark.parametrize("value", ["a", {"a": True}, ["a", 1], [None], 3])
def test_ill_typed_names_are_an_error(value) -> None:
    with pytest.raises(narrowing.IllTypedNamesError, match="argument_names is ill-typed"):
        narrowing.narrow(CALL, lambda bare: value)


def test_an_ill_typed_entrypoint_fails_evaluation_of_a_call() -> None:
    # The policy reads no input, so the projection holds no tool: the names are asked for all the same.
    with pytest.raises(EvaluationError, match="argument_names is ill-typed"):
        Evaluator().evaluate_narrowed(compile_policy(ILL_TYPED), "mcp/decision", CALL)


def call(tool: str, arguments: dict) -> dict:
    principal = Principal(subject="ann", issuer="https://idp", claims={"plan": "pro"}, roles=frozenset({"analyst"}))
    info = ToolInfo.from_definition({"name": tool, "inputSchema": {"type": "object"},
                                     "annotations": {"readOnlyHint": True}})
    return policy_input(make_ctx("tools/call", target=tool, arguments=arguments, principal=principal), "upstream",
                        info)


def test_shipped_policies_remember_a_decision_whose_arguments_they_do_not_read() -> None:
    compiled = load(POLICIES, crash_guard=False).compiled
    evaluator = Evaluator()
    for n in range(3):  # an analyst may not call add: denied, on the role alone
        assert not evaluator.evaluate_narrowed(compiled, "mcp/decision", call("add", {"a": n}))["allow"]
    assert (compiled.memo.misses, compiled.memo.hits) == (2, 4)  # names and decision once, then from the memo
    verdicts = [evaluator.evaluate_narrowed(compiled, "mcp/decision", call("run_query", {"sql": sql, "n": n}))["allow"]
                for n, sql in enumerate(["select 1", "drop table t", "select 1", "drop table t"])]
    assert verdicts == [True, False, True, False]
