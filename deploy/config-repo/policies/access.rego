# One team's access policy for the MCP server behind its sidecar, in one file: a caller's roles grant tools (by
# name or glob) from data.json; a tool whose annotations do not say read-only or non-destructive needs the
# "maintainer" role, and calls it only after a human approves; every other method must be listed.
package mcp

import rego.v1

decision := {
	"allow": count(reasons) == 0,
	"reasons": sort([reason | some reason in reasons]),
	"obligations": obligations,
}

reasons contains "sign in first" if not input.principal.authenticated

reasons contains sprintf("method %s is not allowed", [input.mcp.method]) if {
	input.mcp.method != "tools/call"
	not input.mcp.method in data.access.methods
}

reasons contains sprintf("no role of yours grants the tool %s", [input.mcp.tool.name]) if {
	input.mcp.method == "tools/call"
	not granted(input.mcp.tool.name)
}

reasons contains sprintf("%s changes things: it needs the maintainer role", [input.mcp.tool.name]) if {
	input.mcp.method == "tools/call"
	destructive(input.mcp.tool.annotations)
	not "maintainer" in input.principal.roles
}

obligations["require_approval"] := true if {
	input.mcp.method == "tools/call"
	destructive(input.mcp.tool.annotations)
}

granted(tool) if {
	some role in input.principal.roles
	some pattern in data.access.tool_roles[role]
	glob.match(pattern, [], tool)
}

destructive(annotations) if {
	not annotations.readOnlyHint == true
	not annotations.destructiveHint == false
}

visible contains item.key if {
	input.mcp.list.kind != "tools"
	some item in input.mcp.list.items
}

visible contains item.key if {
	input.mcp.list.kind == "tools"
	some item in input.mcp.list.items
	granted(item.name)
}
