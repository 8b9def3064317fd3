# Destructive tools, judged by the annotations of the sidecar's own tools/list view (never the caller's word):
# elevated roles may call them; approval roles may call them once someone approves (obligation
# require_approval); everyone else neither sees nor calls them. A tool without annotations counts as destructive,
# as MCP's defaults say (readOnlyHint false, destructiveHint true).
package mcp.rules.destructive

import rego.v1

destructive(annotations) if annotations == null

destructive(annotations) if {
	is_object(annotations)
	object.get(annotations, "readOnlyHint", false) != true
	object.get(annotations, "destructiveHint", true) != false
}

elevated if {
	some role in input.principal.roles
	role in data.settings.destructive.elevated_roles
}

approver if {
	some role in input.principal.roles
	role in data.settings.destructive.approval_roles
}

deny contains sprintf("%s is destructive: it needs an elevated role", [input.mcp.tool.name]) if {
	input.mcp.method == "tools/call"
	destructive(input.mcp.tool.annotations)
	not elevated
	not approver
}

obligations["require_approval"] := true if {
	input.mcp.method == "tools/call"
	destructive(input.mcp.tool.annotations)
	not elevated
	approver
}

hidden contains item.key if {
	input.mcp.list.kind == "tools"
	some item in input.mcp.list.items
	destructive(item.annotations)
	not elevated
	not approver
}
