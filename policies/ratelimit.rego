# Per-plan rate limits: the caller's plan (a JWT claim) picks the bucket, the tool picks the cost.
# The rate-limit stage enforces them; bucket names must match its configured buckets.
package mcp

import rego.v1

rate_limits := data.settings.rate_limit

plan := object.get(input.principal.claims, rate_limits.plan_claim, rate_limits.default_plan)

bucket := object.get(rate_limits.plans, plan, rate_limits.plans[rate_limits.default_plan])

obligations["rate_limit"] := {"buckets": [bucket], "cost": object.get(rate_limits.tool_costs, input.mcp.tool.name, 1)} if {
	input.mcp.method == "tools/call"
}
