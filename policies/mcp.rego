# The entrypoint the sidecar queries: data.mcp.decision for every message, data.mcp.visible for list results.
#
# Every file here is package mcp, one concern per file, and contributes any of:
#   reasons      a set of reasons (`reasons contains ... if`); one reason denies the message
#   obligations  obligations by key (`obligations["rate_limit"] := ... if`: rate_limit, cache, redact,
#                require_approval); two files giving one key different values is an error, which denies
#   hidden       a set of keys of input.mcp.list.items the caller must not see
#   argument_names  the names of the tools/call arguments the file reads: once any file defines it, the sidecar
#                hands these rules only the named arguments (evaluated without arguments; see README.md)
# A new file takes part by itself. (One package rather than one per concern combined here: about 13 us less per
# decision in rego-cpp.) Helper rules share the package, so their names must not clash across files.
package mcp

import rego.v1

default allow := false

allow if count(reasons) == 0

decision := {
	"allow": allow,
	"reasons": sort([reason | some reason in reasons]), # rego-cpp 1.5.2: sort() of a set is broken, of an array fine
	"obligations": obligations,
}

visible contains item.key if {
	some item in input.mcp.list.items
	not hidden[item.key]
}
