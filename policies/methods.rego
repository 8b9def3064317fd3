# Every method is decided: besides tools/call (governed by the other packages) only the listed methods pass.
package mcp.rules.methods

import rego.v1

deny contains sprintf("method %s is not allowed", [input.mcp.method]) if {
	input.mcp.method != "tools/call"
	not input.mcp.method in data.settings.methods
}
