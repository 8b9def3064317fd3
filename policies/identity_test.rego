package mcp_test.identity

import data.mcp_test.fixtures
import rego.v1

anonymous(address) := object.union(fixtures.method("tools/list", []), {
	"principal": {"sub": "anonymous", "authenticated": false, "roles": [], "claims": {}, "scopes": []},
	"request": {"client_address": address},
})

test_authenticated_caller_passes_input := fixtures.method("tools/list", [])

test_authenticated_caller_passes if data.mcp.decision.allow

# data.json leaves anonymous access off: even a loopback caller is refused.
test_anonymous_caller_is_denied_by_default_input := anonymous("127.0.0.1")

test_anonymous_caller_is_denied_by_default if {
	not data.mcp.decision.allow
	data.mcp.decision.reasons == ["authentication required"]
}
