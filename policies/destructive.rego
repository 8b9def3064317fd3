# Destructive tools, judged by the annotations of the sidecar's own tools/list view (never the caller's word):
# elevated roles may call them; approval roles may call them once someone approves (obligation
# require_approval); everyone else neither sees nor calls them. A tool without annotations counts as destructive,
# as MCP's defaults say (readOnlyHint false, destructiveHint true).
package mcp.rules.destructive

import rego.v1

# Destructive unless the annotations say read-only or non-destructive; null (or anything not an object) says
# neither. One body of negations: about a third cheaper per tool in rego-cpp than object.get with defaults.
destructive(annotations) if {
	not annotations.readOnlyHint == true
	not annotations.destructiveHint == false
}

elevated if {
	some role in input.principal.roles
	role in data.settings.destructive.elevated_roles
}

approver if {
	some role in input.principal.roles
	role in data.settings.destructive.approval_roles
}

# A rule, so deny and obligations share one evaluation.
calls_destructive if {
	input.mcp.method == "tools/call"
	destructive(input.mcp.tool.annotations)
}

deny contains sprintf("%s is destructive: it needs an elevated role", [input.mcp.tool.name]) if {
	calls_destructive
	not elevated
	not approver
}

obligations["require_approval"] := true if {
	calls_destructive
	not elevated
	approver
}

hidden contains item.key if {
	input.mcp.list.kind == "tools"
	not elevated # before the loop: an elevated caller's list is not walked at all
	not approver
	some item in input.mcp.list.items
	destructive(item.annotations)
}
