"""Policy stage: decide every request and notification, filter list results, hide what a caller may not see.

A denied tools/call answers an isError tool result with the policy's reasons; other requests get a JSON-RPC error
(-31001, decision id in data); a denied notification is accepted (202) and dropped. A call to a tool, prompt or
resource the caller may not see is answered exactly as the upstream answers an unknown one: it is forwarded under
a fresh name nothing can carry, and the upstream's answer comes back with the real name put back in.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import structlog

from proxy import mcp
from proxy.catalog import ANNOTATION_DEFAULTS
from proxy.config import PolicyConfig
from proxy.context import CallContext, Principal
from proxy.errors import PolicyDeniedError
from proxy.pipeline import Handler
from proxy.policy.engine import (
    DECISION_RULE,
    LIST_KINDS,
    VISIBLE_RULE,
    Decision,
    Engine,
    PolicyUnavailableError,
    decision_from,
    policy_input,
    visible_keys,
)
from proxy.policy.listing import filter_entries, list_item
from proxy.policy.shadow import Shadow
from proxy.reply import Reply
from proxy.stages.deps import Deps

log = structlog.get_logger("proxy.policy")

DECIDED_KINDS = (mcp.Kind.REQUEST, mcp.Kind.NOTIFICATION)
HIDEABLE = {"tools/call": ("tools", "name"), "prompts/get": ("prompts", "name"), "resources/read": ("resources", "uri")}


class PolicyStage:
    name = "policy"

    def __init__(self, engine: Engine, upstream_name: str, catalog: Any = None, shadow: Shadow | None = None):
        self.engine = engine
        self.upstream_name = upstream_name
        self.catalog = catalog
        self.shadow = shadow

    @classmethod
    def from_config(cls, config: PolicyConfig, deps: Deps) -> PolicyStage | None:
        if config.engine == "off":
            return None
        from proxy.policy.factory import build_engine  # rego-cpp is loaded only when a policy is

        metrics = deps.metrics
        engine = build_engine(config, Path(config.directory), label="policy",
                              on_failure=lambda: metrics.count("policy_reload_failures", which="active"))
        deps.readiness.add("policy", engine.readiness)
        shadow = None
        if config.shadow_directory:
            shadow_engine = build_engine(config.model_copy(update={"engine": "rego", "on_load_error": "deny"}),
                                         Path(config.shadow_directory), label="policy-shadow",
                                         on_failure=lambda: metrics.count("policy_reload_failures", which="shadow"))
            shadow = Shadow(shadow_engine, lambda: metrics.count("policy_shadow_disagreements"))
            deps.readiness.add("policy_shadow", shadow.readiness)
        return cls(engine, deps.config.upstream.name, deps.catalog, shadow)

    async def start(self) -> None:
        await self.engine.start()
        if self.shadow is not None:
            await self.shadow.engine.start()

    async def close(self) -> None:
        await self.engine.close()
        if self.shadow is not None:
            await self.shadow.engine.close()

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        if ctx.kind not in DECIDED_KINDS:
            return await call_next(ctx)  # responses to server requests, GET streams and DELETEs carry no method
        tool = await self._tool(ctx)
        document = policy_input(ctx, self.upstream_name, tool)
        decision = await self.decide(document, ctx.record.decision_id)
        self._record(ctx, decision)
        if self.shadow is not None:
            await self.shadow.compare(ctx, document, decision)
        if not decision.allow:
            return await self._refuse(ctx, decision, document, tool, call_next)
        ctx = ctx.evolve(obligations=decision.obligations)
        reply = await call_next(ctx)
        if ctx.is_request and ctx.method in LIST_KINDS:
            reply.add_result_hook(self._list_filter(ctx, document))
        return reply

    async def decide(self, document: dict[str, Any], decision_id: str) -> Decision:
        try:
            value, revision = await self.engine.evaluate(DECISION_RULE, document)
        except PolicyUnavailableError as exc:
            log.warning("policy.unavailable", error=str(exc), method=document["mcp"]["method"])
            return Decision(allow=False, reasons=("policy could not be evaluated",), revision=self.engine.revision,
                            decision_id=decision_id, failed=True)
        return decision_from(value, revision, decision_id)

    async def visible_tools(self, principal: Principal, definitions: list[dict[str, Any]]) -> frozenset[str]:
        """The tools policy lets `principal` see, and so call (what its tools/list would show): the console's
        inventory per role."""
        message = {"jsonrpc": "2.0", "id": "console", "method": "tools/list", "params": {}}
        ctx = CallContext(kind=mcp.Kind.REQUEST, message=message, body=None, method="tools/list",
                          request_id="console", protocol_version=mcp.MODERN_VERSION, era=mcp.Era.MODERN, target=None,
                          arguments=None, session_id=None, headers={}, client_address=None, principal=principal)
        items = [list_item("tools", definition, "name") for definition in definitions]
        return await self._visible(policy_input(ctx, self.upstream_name), "tools", items)

    async def _visible(self, document: dict[str, Any], kind: str, items: list[dict[str, Any]]) -> frozenset[str]:
        listed = {**document, "mcp": {**document["mcp"], "list": {"kind": kind, "items": items}}}
        try:
            value, _ = await self.engine.evaluate(VISIBLE_RULE, listed)
        except PolicyUnavailableError as exc:
            log.warning("policy.unavailable", error=str(exc), method=document["mcp"]["method"])
            return frozenset()  # fail closed: nothing is visible
        return visible_keys(value)

    async def _tool(self, ctx: CallContext) -> Any:
        if self.catalog is None or ctx.method != "tools/call" or ctx.target is None:
            return None
        try:
            return await self.catalog.get(ctx.target)
        except Exception:  # an unknown tool is the conservative view: default (destructive) annotations
            log.warning("policy.catalog_failed", tool=ctx.target)
            return None

    def _record(self, ctx: CallContext, decision: Decision) -> None:
        record = ctx.record
        record.policy_decision = "allow" if decision.allow else "deny"
        record.policy_reasons = decision.reasons
        record.policy_revision = decision.revision
        record.obligations = dict(decision.obligations)
        record.redact = tuple(decision.obligations.get("redact", ()))  # audit and span arguments mask these paths

    async def _refuse(self, ctx: CallContext, decision: Decision, document: dict[str, Any], tool: Any,
                      call_next: Handler) -> Reply:
        text = "Denied by policy: " + "; ".join(decision.reasons)
        if not ctx.is_request:
            ctx.record.fail("denied", "policy_denied", text)
            return Reply.empty(202)  # a notification has no answer to carry a refusal: accept and drop it
        hideable = ctx.method in HIDEABLE and ctx.target is not None and not decision.failed
        if hideable and await self._hidden(ctx, document, tool):
            # The decoy still goes upstream, so it is charged like any call: to the buckets policy chose.
            limit = decision.obligations.get("rate_limit")
            return await self._as_unknown(ctx.evolve(obligations={"rate_limit": limit} if limit else {}), call_next)
        data = {"decision_id": ctx.record.decision_id, "reasons": list(decision.reasons),
                "revision": decision.revision}
        raise PolicyDeniedError(text, data=data)

    async def _hidden(self, ctx: CallContext, document: dict[str, Any], tool: Any) -> bool:
        kind, key_field = HIDEABLE[ctx.method or ""]
        entry: dict[str, Any] = {key_field: ctx.target}
        if tool is not None:
            entry = dict(tool.definition)
        elif kind == "tools":
            entry["annotations"] = dict(ANNOTATION_DEFAULTS)
        return ctx.target not in await self._visible(document, kind, [list_item(kind, entry, key_field)])

    async def _as_unknown(self, ctx: CallContext, call_next: Handler) -> Reply:
        """Forward under a name nothing carries; the upstream's 'unknown' answer returns with the real name."""
        original = ctx.target or ""
        prefix = "mcp-sidecar-hidden://" if ctx.method == "resources/read" else "mcp_sidecar_hidden_"
        decoy = prefix + uuid.uuid4().hex
        params = {**ctx.params, mcp.TARGET_PARAM[ctx.method or ""]: decoy}
        if "arguments" in params:
            params["arguments"] = {}  # the caller's arguments never reach the upstream for a hidden target
        # Mcp-Param-* headers mirror argument values: they stay behind with the arguments.
        headers = {name: value for name, value in ctx.headers.items() if not name.startswith(mcp.HEADER_PARAM_PREFIX)}
        if mcp.HEADER_NAME in headers:
            headers[mcp.HEADER_NAME] = decoy
        ctx.record.fail("denied", "policy_hidden", f"{ctx.method} target hidden by policy")
        hidden = ctx.evolve(message={**ctx.message, "params": params}, target=decoy, headers=headers,
                            arguments={} if ctx.arguments is not None else None)
        reply = await call_next(hidden)
        encoded = orjson.dumps(original)[1:-1].decode()

        async def restore_name(message: dict[str, Any]) -> dict[str, Any] | None:
            text = orjson.dumps(message).decode()
            return orjson.loads(text.replace(decoy, encoded)) if decoy in text else None

        reply.add_result_hook(restore_name)
        return reply

    def _list_filter(self, ctx: CallContext, document: dict[str, Any]):
        kind, result_field, key_field = LIST_KINDS[ctx.method or ""]

        async def filter_list(message: dict[str, Any]) -> dict[str, Any] | None:
            result = message.get("result")
            entries = result.get(result_field) if isinstance(result, dict) else None
            if not isinstance(entries, list):
                return None
            items = [list_item(kind, entry, key_field) for entry in entries if isinstance(entry, dict)]
            kept = filter_entries(entries, key_field, await self._visible(document, kind, items))
            if len(kept) == len(entries):
                return None
            ctx.record.extra["policy_hidden_items"] = len(entries) - len(kept)
            return {**message, "result": {**result, result_field: kept}}

        return filter_list
