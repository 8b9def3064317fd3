# Every method is decided: besides tools/call (governed by the other files) only the listed methods pass.
package mcp

import rego.v1

reasons contains sprintf("method %s is not allowed", [input.mcp.method]) if {
	input.mcp.method != "tools/call"
	not input.mcp.method in data.settings.methods
}
