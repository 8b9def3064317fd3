package mcp_test.methods

import data.mcp_test.fixtures
import rego.v1

test_initialize_passes_input := fixtures.method("initialize", [])

test_initialize_passes if data.mcp.decision.allow

test_resources_read_passes_input := fixtures.method("resources/read", [])

test_resources_read_passes if data.mcp.decision.allow

test_notification_passes_input := object.union(fixtures.method("notifications/initialized", []), {"mcp": {"kind": "notification"}})

test_notification_passes if data.mcp.decision.allow

test_unlisted_method_is_denied_input := fixtures.method("sampling/createMessage", ["admin"])

test_unlisted_method_is_denied if {
	not data.mcp.decision.allow
	data.mcp.decision.reasons == ["method sampling/createMessage is not allowed"]
}
