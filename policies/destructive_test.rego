package mcp_test.destructive

import data.mcp_test.fixtures
import rego.v1

scratch := {"path": "/tmp/scratch/old.log"}

test_admin_may_call_destructive_tool_input := fixtures.call("delete_file", scratch, fixtures.destructive, ["admin"])

test_admin_may_call_destructive_tool if {
	data.mcp.decision.allow
	not data.mcp.decision.obligations.require_approval
}

test_developer_may_not_call_destructive_tool_input := fixtures.call("delete_file", scratch, fixtures.destructive, ["developer"])

test_developer_may_not_call_destructive_tool if {
	not data.mcp.decision.allow
	data.mcp.decision.reasons == ["delete_file is destructive: it needs an elevated role"]
}

test_operator_needs_approval_input := fixtures.call("delete_file", scratch, fixtures.destructive, ["operator"])

test_operator_needs_approval if {
	data.mcp.decision.allow
	data.mcp.decision.obligations.require_approval == true
}

test_unannotated_tool_counts_as_destructive_input := fixtures.call("mystery", {}, null, ["developer"])

test_unannotated_tool_counts_as_destructive if not data.mcp.decision.allow

test_read_only_annotation_is_not_destructive_input := fixtures.call("mystery", {}, fixtures.read_only, ["developer"])

test_read_only_annotation_is_not_destructive if data.mcp.decision.allow

test_destructive_tools_hidden_from_developer_input := fixtures.tools_list(["developer"])

test_destructive_tools_hidden_from_developer if {
	not "delete_file" in data.mcp.visible
	not "mystery" in data.mcp.visible
}

test_destructive_tools_visible_to_admin_input := fixtures.tools_list(["admin"])

test_destructive_tools_visible_to_admin if data.mcp.visible == {"add", "run_query", "delete_file", "mystery"}

test_annotations_that_are_not_an_object_count_as_destructive_input := fixtures.call("mystery", {}, "read-only", ["developer"])

test_annotations_that_are_not_an_object_count_as_destructive if not data.mcp.decision.allow
