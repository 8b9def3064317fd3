# Role-based tool access: a role taken from the caller's JWT grants tool-name patterns (glob, e.g. "db_*").
# Tools the caller may not use are also hidden from tools/list (and a call to one looks like an unknown tool).
package mcp.rules.roles

import rego.v1

may_use(tool) if {
	some role in input.principal.roles
	some pattern in data.settings.tool_roles[role]
	glob.match(pattern, [], tool)
}

deny contains sprintf("no role of yours grants the tool %s", [input.mcp.tool.name]) if {
	input.mcp.method == "tools/call"
	not may_use(input.mcp.tool.name)
}

# For a list, the patterns the caller's roles grant are gathered once rather than once per tool (same meaning as
# may_use; for a single call the direct form above is the cheaper one in rego-cpp).
granted contains pattern if {
	some role in input.principal.roles
	some pattern in data.settings.tool_roles[role]
}

granted_tool(tool) if {
	some pattern in granted
	glob.match(pattern, [], tool)
}

hidden contains item.key if {
	input.mcp.list.kind == "tools"
	some item in input.mcp.list.items
	not granted_tool(item.name)
}
