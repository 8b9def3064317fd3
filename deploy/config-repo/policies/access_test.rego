# Tests of access.rego on this repository's own data.json (`mcp-sidecar policy test policies`).
package access_test

import rego.v1

read_only := {"readOnlyHint": true}

destructive := {"readOnlyHint": false, "destructiveHint": true}

call(tool, annotations, roles) := {
	"version": 1,
	"principal": {"sub": "someone", "issuer": "https://idp.example.com", "claims": {}, "scopes": [],
	              "roles": roles, "authenticated": true},
	"mcp": {"method": "tools/call", "kind": "request", "protocol_version": "2026-07-28", "era": "modern",
	        "tool": {"name": tool, "arguments": {}, "known": true, "annotations": annotations, "hash": null},
	        "prompt": null, "resource": null},
	"request": {"id": 1, "session_id": null, "client_address": "10.0.0.1", "headers": {}},
	"upstream": {"name": "demo"},
}

test_reader_may_add_input := call("add", read_only, ["reader"])

test_reader_may_add if data.mcp.decision.allow

test_reader_may_not_delete_input := call("delete_file", destructive, ["reader"])

test_reader_may_not_delete if {
	not data.mcp.decision.allow
	"delete_file changes things: it needs the maintainer role" in data.mcp.decision.reasons
}

test_maintainer_deletes_after_approval_input := call("delete_file", destructive, ["maintainer"])

test_maintainer_deletes_after_approval if {
	data.mcp.decision.allow
	data.mcp.decision.obligations.require_approval == true
}

test_unannotated_tools_count_as_destructive_input := call("mystery", null, ["reader"])

test_unannotated_tools_count_as_destructive if not data.mcp.decision.allow

test_reader_sees_granted_tools_only_input := object.union(call("x", null, ["reader"]), {"mcp": {
	"method": "tools/list", "tool": null,
	"list": {"kind": "tools", "items": [{"key": "add", "name": "add"}, {"key": "delete_file", "name": "delete_file"}]},
}})

test_reader_sees_granted_tools_only if data.mcp.visible == {"add"}
