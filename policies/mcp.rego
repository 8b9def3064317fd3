# The entrypoint the sidecar queries: data.mcp.decision for every message, data.mcp.visible for list results.
#
# Each package under data.mcp.rules contributes any of:
#   deny         a set of reasons; one reason denies the message
#   obligations  an object of obligations (rate_limit, cache, redact, require_approval)
#   hidden       a set of keys of input.mcp.list.items the caller must not see
# A new package takes part once it is named below. (Iterating `data.mcp.rules[name]` instead would pick packages
# up by themselves, but costs rego-cpp about twice the evaluation time.)
package mcp

import data.mcp.rules
import rego.v1

reasons := (((rules.identity.deny | rules.methods.deny) | rules.roles.deny) | rules.destructive.deny) | rules.arguments.deny

obligations := object.union(rules.ratelimit.obligations, rules.destructive.obligations)

default allow := false

allow if count(reasons) == 0

decision := {
	"allow": allow,
	"reasons": sort([reason | some reason in reasons]), # rego-cpp 1.5.2: sort() of a set is broken, of an array fine
	"obligations": obligations,
}

hidden := (rules.roles.hidden | rules.destructive.hidden)

visible contains item.key if {
	some item in input.mcp.list.items
	not hidden[item.key]
}
