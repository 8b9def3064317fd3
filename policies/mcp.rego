# The entrypoint the sidecar queries: data.mcp.decision for every message, data.mcp.visible for list results.
#
# Each package under data.mcp.rules contributes any of:
#   deny         a set of reasons; one reason denies the message
#   obligations  an object of obligations (rate_limit, cache, redact, require_approval); two packages must not
#                set the same key (that is a conflict, which denies)
#   hidden       a set of keys of input.mcp.list.items the caller must not see
# Drop a new file with `package mcp.rules.<name>` into this directory and it takes part.
package mcp

import rego.v1

reasons contains reason if {
	some name
	some reason in data.mcp.rules[name].deny
}

obligations[key] := value if {
	some name
	some key, value in data.mcp.rules[name].obligations
}

default allow := false

allow if count(reasons) == 0

decision := {
	"allow": allow,
	"reasons": sort([reason | some reason in reasons]), # rego-cpp 1.5.2: sort() of a set is broken, of an array fine
	"obligations": obligations,
}

hidden contains key if {
	some name
	some key in data.mcp.rules[name].hidden
}

visible contains item.key if {
	some item in input.mcp.list.items
	not item.key in hidden
}
