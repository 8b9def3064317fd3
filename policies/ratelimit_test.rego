package mcp_test.ratelimit

import data.mcp_test.fixtures
import rego.v1

call(tool, plan) := fixtures.call_with_claims(tool, {}, fixtures.read_only, ["developer"], {"plan": plan})

test_plan_claim_picks_the_bucket_input := call("add", "pro")

test_plan_claim_picks_the_bucket if data.mcp.decision.obligations.rate_limit == {"buckets": ["plan-pro"], "cost": 1}

test_unknown_plan_falls_back_to_the_default_plan_input := call("add", "platinum")

test_unknown_plan_falls_back_to_the_default_plan if data.mcp.decision.obligations.rate_limit.buckets == ["plan-free"]

test_no_plan_claim_means_default_plan_input := fixtures.call("add", {}, fixtures.read_only, ["developer"])

test_no_plan_claim_means_default_plan if data.mcp.decision.obligations.rate_limit.buckets == ["plan-free"]

test_expensive_tool_costs_more_input := call("slow_count", "enterprise")

test_expensive_tool_costs_more if data.mcp.decision.obligations.rate_limit == {"buckets": ["plan-enterprise"], "cost": 5}

test_lists_carry_no_rate_limit_obligation_input := fixtures.method("tools/list", [])

test_lists_carry_no_rate_limit_obligation if not data.mcp.decision.obligations.rate_limit
