# Input documents for the tests (loaded only by `mcp-sidecar policy test`, never served).
package mcp_test.fixtures

import rego.v1

read_only := {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false}

destructive := {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": true}

principal(roles, claims) := {
	"sub": "someone",
	"issuer": "https://idp.example",
	"claims": claims,
	"scopes": [],
	"roles": roles,
	"authenticated": true,
}

request := {"id": 1, "session_id": null, "client_address": "10.1.2.3", "time": "2026-11-25T03:00:00+00:00", "headers": {}}

call(tool, arguments, annotations, roles) := call_with_claims(tool, arguments, annotations, roles, {})

call_with_claims(tool, arguments, annotations, roles, claims) := {
	"version": 1,
	"principal": principal(roles, claims),
	"mcp": {
		"method": "tools/call", "kind": "request", "protocol_version": "2026-07-28", "era": "modern",
		"tool": {"name": tool, "arguments": arguments, "known": true, "annotations": annotations, "hash": null},
		"prompt": null, "resource": null,
	},
	"request": request,
	"upstream": {"name": "upstream"},
}

# What the sidecar evaluates data.mcp.argument_names over: a call's input without input.mcp.tool.arguments.
call_without_arguments(tool, roles) := json.remove(call(tool, {}, read_only, roles), ["mcp/tool/arguments"])

method(name, roles) := {
	"version": 1,
	"principal": principal(roles, {}),
	"mcp": {
		"method": name, "kind": "request", "protocol_version": "2026-07-28", "era": "modern",
		"tool": null, "prompt": null, "resource": null,
	},
	"request": request,
	"upstream": {"name": "upstream"},
}

tools_list(roles) := object.union(method("tools/list", roles), {"mcp": {"list": {"kind": "tools", "items": [
	{"key": "add", "name": "add", "annotations": read_only},
	{"key": "run_query", "name": "run_query", "annotations": read_only},
	{"key": "delete_file", "name": "delete_file", "annotations": destructive},
	{"key": "mystery", "name": "mystery", "annotations": null},
]}}})
