"""data.mcp.argument_names through the running sidecar: decisions remembered across arguments they do not read,
still judged on the ones they do, ill-typed names denied, and policies without the entrypoint as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.integration.policy_support import POLICIES, copy_policies, user
from tests.kit import make_config, run_sidecar

MODE = "2026-07-28"
# Shows the caller exactly which arguments the decision was handed.
SHOW_ARGUMENTS = '''package mcp
import rego.v1

decision := {"allow": false, "reasons": [json.marshal(input.mcp.tool.arguments)]} if input.mcp.method == "tools/call"
decision := {"allow": true} if input.mcp.method != "tools/call"
'''

ALLOW_ALL = 'package mcp\nimport rego.v1\n\ndecision := {"allow": true}\n'

# Allows a call only when it is handed exactly {"a": 1}: with its own argument_names, add(a=1, b=2) qualifies.
SHADOW = '''package mcp
import rego.v1

argument_names := {"a"}

decision := {"allow": input.mcp.tool.arguments == {"a": 1}} if input.mcp.method == "tools/call"
decision := {"allow": true} if input.mcp.method != "tools/call"
'''


def config_for(upstream: str, directory: Path):
    return make_config(upstream, policy__engine="rego", policy__directory=str(directory), policy__reload=False)


def policy_stage(sidecar):
    return next(stage for stage in sidecar.app.stages if stage.name == "policy")


def memo_of(sidecar):
    return policy_stage(sidecar).engine.loader.current.compiled.memo


def write_policy(directory: Path, source: str) -> Path:
    directory.mkdir()
    (directory / "policy.rego").write_text(source + "visible contains item.key if some item in input.mcp.list.items\n")
    return directory


def without_argument_names(directory: Path) -> Path:
    """The shipped policies as they were before the entrypoint: its two rules taken out of arguments.rego."""
    source = (directory / "arguments.rego").read_text()
    kept = [block for block in source.split("\n\n") if "argument_names contains" not in block]
    (directory / "arguments.rego").write_text("\n\n".join(kept))
    assert "argument_names" not in (directory / "arguments.rego").read_text()
    return directory


@pytest.mark.parametrize("entrypoint", [True, False], ids=["argument_names", "without"])
async def test_a_tool_without_argument_rules_is_decided_once_whatever_its_arguments(
        tools_upstream: str, tmp_path: Path, identities, entrypoint: bool) -> None:
    principal, seen = identities
    principal.principal = user("dev", "developer", plan="pro")
    directory = copy_policies(tmp_path / "p")
    if not entrypoint:
        without_argument_names(directory)
    async with run_sidecar(config_for(tools_upstream, directory)) as sidecar:
        memo = memo_of(sidecar)
        async with Client(sidecar.url, mode=MODE, cache=None) as client:
            first = await client.call_tool("add", {"a": 1, "b": 1})
            misses = memo.misses
            sums = [await client.call_tool("add", {"a": n, "b": 10}) for n in range(2, 6)]
        fresh = memo.misses - misses
    assert not first.is_error and [result.structured_content for result in sums] == [
        {"result": n + 10} for n in range(2, 6)]  # each call reached the upstream with its own arguments
    assert all(ctx.record.policy_decision == "allow" for ctx in seen.contexts if ctx.method == "tools/call")
    # With the entrypoint every later decision came from the memo; without it each new arguments object is evaluated.
    assert fresh == (0 if entrypoint else 4)


async def test_a_tool_with_an_argument_rule_is_judged_on_that_argument_every_time(tools_upstream: str,
                                                                                   identities) -> None:
    principal, _ = identities
    principal.principal = user("ann", "analyst")
    good, bad = "SELECT id FROM users", "DELETE FROM users"
    async with run_sidecar(config_for(tools_upstream, POLICIES)) as sidecar:
        async with Client(sidecar.url, mode=MODE, cache=None) as client:
            queries = [await client.call_tool("run_query", {"sql": sql}) for sql in (good, bad, good, bad)]
            reads = [await client.call_tool("read_file", {"path": path})
                     for path in ("/srv/shared/a.csv", "/srv/shared/../../etc/passwd", "/srv/shared/a.csv")]
        hits = memo_of(sidecar).hits
    assert [query.is_error for query in queries] == [False, True, False, True]
    assert queries[2].content[0].text == f"ran: {good}"
    assert queries[3].content[0].text == "Denied by policy: run_query: argument sql must be a single SELECT statement"
    assert [read.is_error for read in reads] == [False, True, False]
    assert hits >= 4  # the repeated calls were decided from the memo, on the argument that decides them


@pytest.mark.parametrize("names", ['"sql"', '{1}', '{"sql": true}', '["sql", null]'])
async def test_ill_typed_argument_names_deny_calls(stateless_upstream: str, tmp_path: Path, names: str) -> None:
    directory = write_policy(tmp_path / "p", f'{ALLOW_ALL}argument_names := {names}\n')
    async with run_sidecar(config_for(stateless_upstream, directory)) as sidecar, Client(
            sidecar.url, mode=MODE, cache=None) as client:
        listed = await client.list_tools()  # not a tools/call: argument_names is not asked
        denied = await client.call_tool("add", {"a": 1, "b": 2})
    assert "add" in {tool.name for tool in listed.tools}
    assert denied.is_error and denied.content[0].text == "Denied by policy: policy could not be evaluated"


@pytest.mark.parametrize(("names", "seen"), [
    (None, {"a": 1, "b": 2}),  # no entrypoint: every argument, as before
    ('{"*"}', {"a": 1, "b": 2}),
    ('{"b", "z"}', {"b": 2}),  # a name the call lacks stays absent
    ("set()", {}),
])
async def test_the_decision_sees_only_the_named_arguments(stateless_upstream: str, tmp_path: Path, names: str | None,
                                                          seen: dict) -> None:
    entrypoint = "" if names is None else f"argument_names := {names}\n"
    directory = write_policy(tmp_path / "p", SHOW_ARGUMENTS + entrypoint)
    async with run_sidecar(config_for(stateless_upstream, directory)) as sidecar, Client(
            sidecar.url, mode=MODE, cache=None) as client:
        result = await client.call_tool("add", {"a": 1, "b": 2})
    assert result.is_error and result.content[0].text == f"Denied by policy: {json_text(seen)}"


def json_text(value: dict) -> str:
    return "{" + ",".join(f'"{key}":{item}' for key, item in value.items()) + "}"


async def test_a_shadow_policy_narrows_by_its_own_argument_names(stateless_upstream: str, tmp_path: Path) -> None:
    active = write_policy(tmp_path / "active", ALLOW_ALL)
    shadow = write_policy(tmp_path / "shadow", SHADOW)
    config = make_config(stateless_upstream, policy__engine="rego", policy__directory=str(active),
                         policy__shadow_directory=str(shadow), policy__reload=False)
    async with run_sidecar(config) as sidecar, Client(sidecar.url, mode=MODE, cache=None) as client:
        agreed = await client.call_tool("add", {"a": 1, "b": 2})  # the shadow sees {"a": 1}: allows, as active does
        disagreed = await client.call_tool("add", {"a": 2, "b": 2})
        disagreements = policy_stage(sidecar).shadow.disagreements
    assert agreed.structured_content == {"result": 3} and disagreed.structured_content == {"result": 4}
    assert disagreements == 1
