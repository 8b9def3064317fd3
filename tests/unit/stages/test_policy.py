"""The policy stage with the shipped policies (policies/): decisions, obligations, refusals, hidden targets, lists.

The engine is the real in-process Rego bundle; the catalogue is the sidecar's trusted tools/list view, given here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy import mcp
from proxy.catalog import ToolInfo
from proxy.context import ANONYMOUS, CallContext, Principal
from proxy.errors import PolicyDeniedError
from proxy.policy.loader import PolicyLoader, RegoEngine
from proxy.reply import Reply
from proxy.stages.policy import PolicyStage
from tests.kit import make_config, make_ctx

POLICIES = Path(__file__).resolve().parents[3] / "policies"
TOOLS = [
    {"name": "add", "inputSchema": {}, "annotations": {"readOnlyHint": True}},
    {"name": "read_file", "inputSchema": {}, "annotations": {"readOnlyHint": True}},
    {"name": "delete_file", "inputSchema": {}, "annotations": {"destructiveHint": True}},
    {"name": "slow_count", "inputSchema": {}, "annotations": {"readOnlyHint": True}},
]


class Catalog:
    def __init__(self, tools: list[dict[str, Any]]) -> None:
        self.tools = {tool["name"]: ToolInfo.from_definition(tool) for tool in tools}

    async def get(self, name: str) -> ToolInfo | None:
        return self.tools.get(name)


class Upstream:
    """The next handler: records what it was given and answers with `answer(ctx)`."""

    def __init__(self, result: dict[str, Any] | None = None) -> None:
        self.seen: list[CallContext] = []
        self.result = result or {"content": []}

    async def __call__(self, ctx: CallContext) -> Reply:
        self.seen.append(ctx)
        return Reply.json({"jsonrpc": "2.0", "id": ctx.request_id, "result": self.result})


@pytest.fixture(scope="module")
def engine() -> RegoEngine:
    loader = PolicyLoader(POLICIES, reload_interval=None)
    loader.load_initial()
    return RegoEngine(loader)


@pytest.fixture
def stage(engine: RegoEngine) -> PolicyStage:
    return PolicyStage(engine, "upstream", Catalog(TOOLS))


def caller(*roles: str, **claims: Any) -> Principal:
    return Principal("alice", issuer="https://idp", claims=claims, roles=frozenset(roles))


def test_engine_off_builds_no_stage() -> None:
    assert PolicyStage.from_config(make_config().policy, None) is None  # type: ignore[arg-type]


async def test_an_allowed_call_goes_on_with_the_obligations_and_is_recorded(stage: PolicyStage) -> None:
    upstream = Upstream()
    ctx = make_ctx(target="slow_count", arguments={"n": 1}, principal=caller("reader", plan="pro"))
    await stage(ctx, upstream)
    assert upstream.seen[0].obligations == {"rate_limit": {"buckets": ["plan-pro"], "cost": 5}}
    record = ctx.record
    assert (record.policy_decision, record.policy_reasons) == ("allow", ())
    assert record.policy_revision == stage.engine.revision and record.obligations == upstream.seen[0].obligations


async def test_a_destructive_tool_for_an_approver_needs_approval(stage: PolicyStage) -> None:
    upstream = Upstream()
    await stage(make_ctx(target="delete_file", arguments={"path": "/tmp/scratch/x"}, principal=caller("operator")),
                upstream)
    assert upstream.seen[0].obligations["require_approval"] is True


async def test_a_denied_request_raises_with_decision_id_reasons_and_revision(stage: PolicyStage) -> None:
    upstream = Upstream()
    ctx = make_ctx(target="read_file", arguments={"path": "/etc/passwd"}, principal=caller("analyst"))
    with pytest.raises(PolicyDeniedError) as caught:
        await stage(ctx, upstream)
    reason = "read_file: argument path must be a path in an allowed directory"
    assert caught.value.message == "Denied by policy: " + reason
    assert caught.value.data == {"decision_id": ctx.record.decision_id, "reasons": [reason],
                                 "revision": stage.engine.revision}
    assert upstream.seen == [] and ctx.record.policy_decision == "deny"


async def test_anonymous_callers_off_loopback_are_refused(stage: PolicyStage) -> None:
    ctx = make_ctx("prompts/get", target="greet", principal=ANONYMOUS, client_address="10.1.2.3")
    with pytest.raises(PolicyDeniedError, match="authentication required"):
        await stage(ctx, Upstream())


async def test_a_method_outside_the_list_is_refused(stage: PolicyStage) -> None:
    with pytest.raises(PolicyDeniedError, match="method sampling/createMessage is not allowed"):
        await stage(make_ctx("sampling/createMessage", target=None, principal=caller("reader")), Upstream())


async def test_a_denied_notification_is_accepted_and_dropped(stage: PolicyStage) -> None:
    upstream = Upstream()
    ctx = make_ctx("notifications/unheard_of", target=None, request_id=None, principal=caller("reader"))
    reply = await stage(ctx, upstream)
    assert reply.status == 202 and reply.body == b"" and upstream.seen == []
    assert (ctx.record.outcome, ctx.record.error_type) == ("denied", "policy_denied")


async def test_messages_without_a_method_pass_undecided(stage: PolicyStage) -> None:
    upstream = Upstream()
    ctx = make_ctx("tools/call", kind=mcp.Kind.STREAM, principal=ANONYMOUS, client_address="10.1.2.3")
    await stage(ctx, upstream)
    assert len(upstream.seen) == 1 and ctx.record.policy_decision is None


async def test_a_hidden_tool_is_called_under_a_decoy_and_answered_with_its_name(stage: PolicyStage) -> None:
    upstream = Upstream()
    ctx = make_ctx(target="delete_file", arguments={"path": "/secret"}, principal=caller("reader"),
                   headers={mcp.HEADER_NAME: "delete_file", "mcp-param-path": "/secret", "accept": "x"})
    reply = await stage(ctx, upstream)
    sent = upstream.seen[0]
    decoy = sent.target
    assert decoy is not None and decoy.startswith("mcp_sidecar_hidden_") and sent.params["name"] == decoy
    assert sent.arguments == {} and sent.params["arguments"] == {}
    assert dict(sent.headers) == {mcp.HEADER_NAME: decoy, "accept": "x"}  # Mcp-Param-* stay behind
    assert (ctx.record.outcome, ctx.record.error_type) == ("denied", "policy_hidden")
    unknown = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": f"Unknown tool: {decoy}"}],
                                                     "isError": True}}
    restored, changed = await reply.apply_hooks(unknown)
    assert changed and restored["result"]["content"][0]["text"] == "Unknown tool: delete_file"


async def test_a_failed_engine_denies_without_hiding(tmp_path: Path) -> None:
    stage = PolicyStage(RegoEngine(PolicyLoader(tmp_path, reload_interval=None)), "upstream", Catalog(TOOLS))
    upstream = Upstream()
    with pytest.raises(PolicyDeniedError, match="policy could not be evaluated"):
        await stage(make_ctx(target="delete_file", principal=caller("reader")), upstream)
    assert upstream.seen == []  # an engine failure says nothing about targets: no decoy goes upstream


def tools_list(*names: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": {"tools": [tool for tool in TOOLS if tool["name"] in names]}}


async def test_a_list_shows_only_what_the_caller_may_call(stage: PolicyStage) -> None:
    ctx = make_ctx("tools/list", target=None, principal=caller("reader"))
    reply = await stage(ctx, Upstream())
    filtered, changed = await reply.apply_hooks(tools_list("add", "read_file", "delete_file", "slow_count"))
    assert changed and [tool["name"] for tool in filtered["result"]["tools"]] == ["add", "slow_count"]
    assert ctx.record.extra["policy_hidden_items"] == 2


async def test_a_list_the_caller_may_see_whole_is_left_as_it_is(stage: PolicyStage) -> None:
    reply = await stage(make_ctx("tools/list", target=None, principal=caller("admin")), Upstream())
    message = tools_list("add", "delete_file")
    assert await reply.apply_hooks(message) == (message, False)


async def test_a_list_without_its_entries_is_not_touched(stage: PolicyStage) -> None:
    reply = await stage(make_ctx("tools/list", target=None, principal=caller("reader")), Upstream())
    message = {"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "x"}}
    assert await reply.apply_hooks(message) == (message, False)


async def test_a_failed_catalogue_counts_the_tool_as_destructive(engine: RegoEngine) -> None:
    class BrokenCatalog:
        async def get(self, name: str) -> ToolInfo | None:
            raise OSError("upstream down")

    stage = PolicyStage(engine, "upstream", BrokenCatalog())
    upstream = Upstream()
    # add is read-only in truth; without the catalogue an operator may call it only as a destructive tool:
    await stage(make_ctx(target="add", principal=caller("operator")), upstream)
    assert upstream.seen[0].obligations.get("require_approval") is True
