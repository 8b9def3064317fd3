# Per-plan rate limits: the caller's plan (a JWT claim) picks the bucket, the tool picks the cost.
# The rate-limit stage enforces them; bucket names must match its configured buckets.
package mcp.rules.ratelimit

import rego.v1

settings := data.settings.rate_limit

plan := object.get(input.principal.claims, settings.plan_claim, settings.default_plan)

bucket := object.get(settings.plans, plan, settings.plans[settings.default_plan])

obligations["rate_limit"] := {"buckets": [bucket], "cost": object.get(settings.tool_costs, input.mcp.tool.name, 1)} if {
	input.mcp.method == "tools/call"
}
