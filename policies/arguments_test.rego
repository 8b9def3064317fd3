package mcp_test.arguments

import data.mcp_test.fixtures
import rego.v1

read(path) := fixtures.call("read_file", {"path": path}, fixtures.read_only, ["analyst"])

query(sql) := fixtures.call("run_query", {"sql": sql}, fixtures.read_only, ["analyst"])

# argument_names: the decision is handed only the arguments named here (see arguments.rego).
test_path_tool_names_its_path_argument_input := fixtures.call_without_arguments("read_file", ["analyst"])

test_path_tool_names_its_path_argument if data.mcp.argument_names == {"path"}

test_sql_tool_names_its_sql_argument_input := fixtures.call_without_arguments("run_query", ["analyst"])

test_sql_tool_names_its_sql_argument if data.mcp.argument_names == {"sql"}

test_tool_without_argument_rules_names_none_input := fixtures.call_without_arguments("add", ["reader"])

test_tool_without_argument_rules_names_none if data.mcp.argument_names == set()

test_names_do_not_depend_on_the_caller_input := fixtures.call_without_arguments("delete_file", ["developer"])

test_names_do_not_depend_on_the_caller if data.mcp.argument_names == {"path"}

test_path_under_prefix_is_allowed_input := read("/srv/shared/report.csv")

test_path_under_prefix_is_allowed if data.mcp.decision.allow

test_path_outside_prefix_is_denied_input := read("/etc/passwd")

test_path_outside_prefix_is_denied if {
	not data.mcp.decision.allow
	data.mcp.decision.reasons == ["read_file: argument path must be a path in an allowed directory"]
}

test_parent_traversal_is_denied_input := read("/srv/shared/../../etc/passwd")

test_parent_traversal_is_denied if not data.mcp.decision.allow

test_missing_path_is_denied_input := fixtures.call("read_file", {}, fixtures.read_only, ["analyst"])

test_missing_path_is_denied if not data.mcp.decision.allow

test_non_string_path_is_denied_input := read(["/srv/shared/a"])

test_non_string_path_is_denied if not data.mcp.decision.allow

test_select_is_allowed_input := query("SELECT name FROM users WHERE id = 7;")

test_select_is_allowed if data.mcp.decision.allow

test_multiline_select_is_allowed_input := query("select\n  count(*)\nfrom orders")

test_multiline_select_is_allowed if data.mcp.decision.allow

test_sql_reason_names_the_rule_input := query("drop table users")

test_sql_reason_names_the_rule if {
	not data.mcp.decision.allow
	data.mcp.decision.reasons == ["run_query: argument sql must be a single SELECT statement"]
}

test_delete_is_denied_input := query("DELETE FROM users")

test_delete_is_denied if not data.mcp.decision.allow

test_second_statement_is_denied_input := query("select 1; drop table users")

test_second_statement_is_denied if not data.mcp.decision.allow

test_select_into_is_denied_input := query("SELECT * INTO backup FROM users")

test_select_into_is_denied if not data.mcp.decision.allow

test_update_is_denied_input := query("update users set admin = true")

test_update_is_denied if not data.mcp.decision.allow

test_cte_delete_is_denied_input := query("WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x")

test_cte_delete_is_denied if not data.mcp.decision.allow

test_newline_delete_is_denied_input := query("select x from t\ndelete from t")

test_newline_delete_is_denied if not data.mcp.decision.allow
