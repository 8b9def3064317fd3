from __future__ import annotations

from proxy.context import CallContext
from proxy.errors import PolicyDeniedError
from proxy.pipeline import Handler, build_chain
from proxy.reply import Reply
from tests.kit import make_ctx


class Recorder:
    def __init__(self, name: str, log: list[str], refuse: bool = False) -> None:
        self.name, self.log, self.refuse = name, log, refuse

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        self.log.append(f"{self.name}>")
        if self.refuse:
            raise PolicyDeniedError("no")
        reply = await call_next(ctx)
        self.log.append(f"<{self.name}")
        return reply


async def terminal(ctx: CallContext) -> Reply:
    return Reply.json({"jsonrpc": "2.0", "id": ctx.request_id, "result": {}})


async def test_stages_run_outermost_first_and_unwind_in_reverse() -> None:
    log: list[str] = []
    chain = build_chain([Recorder("a", log), Recorder("b", log)], terminal)
    await chain(make_ctx())
    assert log == ["a>", "b>", "<b", "<a"]


async def test_a_refusal_becomes_a_reply_that_outer_stages_still_see() -> None:
    log: list[str] = []
    chain = build_chain([Recorder("outer", log), Recorder("policy", log, refuse=True)], terminal)
    ctx = make_ctx("tools/call", target="delete_file")
    reply = await chain(ctx)
    assert log == ["outer>", "policy>", "<outer"]
    assert reply.message is not None and reply.message["result"]["isError"] is True
    assert ctx.record.outcome == "denied" and ctx.record.error_type == "policy_denied"


async def test_non_tool_refusal_is_a_json_rpc_error_outside_the_reserved_range() -> None:
    chain = build_chain([Recorder("policy", [], refuse=True)], terminal)
    reply = await chain(make_ctx("prompts/get", target="greet", request_id=5))
    assert reply.message is not None
    assert reply.message["id"] == 5 and reply.message["error"]["code"] == -31001
