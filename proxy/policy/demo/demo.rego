# The policy `mcp-sidecar serve --demo` runs with: anonymous callers on this machine may use everything the demo
# server offers; anyone else is refused. It exists for the quickstart only: never put it in front of a real server.
package mcp

import rego.v1

default allow := false

allow if input.request.client_address in {"127.0.0.1", "::1"}

default reasons := ["the demo policy admits only callers on this machine"]

reasons := [] if allow

decision := {"allow": allow, "reasons": reasons}

visible contains item.key if {
	allow
	some item in input.mcp.list.items
}
