# Argument constraints: the sidecar sees the arguments of every tools/call, so policy can judge them.
#   path_prefix:      a filesystem tool's path argument must lie under one of the prefixes (no ".." segments)
#   sql_select_only:  a SQL tool's statement must be one SELECT (no second statement, no writing keywords)
# The rule is looked up by the tool's name first: input.mcp.tool is null unless the method is tools/call, so no
# method check is needed, and a tool without a rule costs one lookup (about 8 us less per call in rego-cpp).
package mcp

import rego.v1

# The arguments the decision reads: the sidecar hands it only these (argument_names is evaluated without any
# arguments), so a call to a tool without a rule here is decided once per caller and then remembered, whatever
# its arguments. A file that reads another argument must add its name here too (or "*" for all of them).
argument_names contains rule.argument if {
	rule := data.settings.arguments.path_prefix[input.mcp.tool.name]
}

argument_names contains rule.argument if {
	rule := data.settings.arguments.sql_select_only[input.mcp.tool.name]
}

reasons contains sprintf("%s: argument %s must be a path in an allowed directory", [tool, rule.argument]) if {
	rule := data.settings.arguments.path_prefix[input.mcp.tool.name]
	tool := input.mcp.tool.name
	not path_allowed(object.get(input.mcp.tool.arguments, rule.argument, null), rule.prefixes)
}

path_allowed(path, prefixes) if {
	is_string(path)
	not ".." in split(path, "/")
	some prefix in prefixes
	startswith(path, prefix)
}

reasons contains sprintf("%s: argument %s must be a single SELECT statement", [tool, rule.argument]) if {
	rule := data.settings.arguments.sql_select_only[input.mcp.tool.name]
	tool := input.mcp.tool.name
	not select_only(object.get(input.mcp.tool.arguments, rule.argument, null))
}

select_only(sql) if {
	is_string(sql)
	statement := trim_suffix(trim_space(normalized(sql)), ";")
	startswith(statement, "select ")
	not contains(statement, ";")
	not regex.match(`\b(insert|update|delete|merge|drop|alter|create|truncate|grant|revoke|into|call|exec|execute|copy|attach|pragma)\b`, statement)
}

# Lower case, with line breaks and tabs as spaces (the engine's regex has no case-insensitive flag).
normalized(sql) := replace(replace(replace(lower(sql), "\n", " "), "\r", " "), "\t", " ")
