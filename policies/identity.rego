# Who may call at all: authenticated principals, and anonymous callers only where data.settings.anonymous says so.
package mcp

import rego.v1

reasons contains "authentication required" if {
	not input.principal.authenticated
	not anonymous_admitted
}

anonymous_admitted if {
	data.settings.anonymous.allowed
	not data.settings.anonymous.loopback_only
}

anonymous_admitted if {
	data.settings.anonymous.allowed
	data.settings.anonymous.loopback_only
	input.request.client_address in {"127.0.0.1", "::1"}
}
