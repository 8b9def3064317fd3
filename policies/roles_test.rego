package mcp_test.roles

import data.mcp_test.fixtures
import rego.v1

test_reader_may_call_add_input := fixtures.call("add", {"a": 1, "b": 2}, fixtures.read_only, ["reader"])

test_reader_may_call_add if data.mcp.decision.allow

test_reader_may_not_call_run_query_input := fixtures.call("run_query", {"sql": "select 1"}, fixtures.read_only, ["reader"])

test_reader_may_not_call_run_query if {
	not data.mcp.decision.allow
	data.mcp.decision.reasons == ["no role of yours grants the tool run_query"]
}

test_no_roles_no_tools_input := fixtures.call("add", {}, fixtures.read_only, [])

test_no_roles_no_tools if not data.mcp.decision.allow

# "developer": ["*"] in data.json: a glob pattern grants every tool name.
test_glob_pattern_grants_input := fixtures.call("anything_at_all", {}, fixtures.read_only, ["developer"])

test_glob_pattern_grants if data.mcp.decision.allow

test_reader_sees_only_granted_tools_input := fixtures.tools_list(["reader"])

test_reader_sees_only_granted_tools if data.mcp.visible == {"add"}

test_developer_sees_every_non_destructive_tool_input := fixtures.tools_list(["developer"])

test_developer_sees_every_non_destructive_tool if data.mcp.visible == {"add", "run_query"}
