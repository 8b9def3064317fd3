"""Shadow evaluation: a candidate policy decides beside the active one; disagreements are counted, never enforced."""

from __future__ import annotations

from pathlib import Path

from proxy.policy.engine import Decision, policy_input
from proxy.policy.loader import PolicyLoader, RegoEngine
from proxy.policy.shadow import Shadow
from tests.kit import make_ctx

CANDIDATE = """package mcp
import rego.v1
default decision := {"allow": true}
decision := {"allow": false, "reasons": ["no deletes"]} if input.mcp.tool.name == "delete"
decision := {"allow": true, "obligations": {"require_approval": true}} if input.mcp.tool.name == "pay"
"""


def engine(tmp_path: Path, text: str | None = CANDIDATE) -> RegoEngine:
    loader = PolicyLoader(tmp_path, reload_interval=None, label="policy-shadow")
    if text is not None:
        (tmp_path / "p.rego").write_text(text)
        loader.load_initial()
    return RegoEngine(loader)


async def compare(shadow: Shadow, tool: str, active: Decision) -> tuple[Decision, dict]:
    ctx = make_ctx(target=tool)
    candidate = await shadow.compare(ctx, policy_input(ctx, "up"), active)
    return candidate, ctx.record.extra


async def test_agreement_is_counted_and_leaves_no_trace(tmp_path: Path) -> None:
    calls: list[bool] = []
    shadow = Shadow(engine(tmp_path), lambda: calls.append(True))
    candidate, extra = await compare(shadow, "add", Decision(allow=True))
    assert candidate.allow and extra == {} and calls == []
    assert (shadow.decisions, shadow.disagreements) == (1, 0)


async def test_a_disagreement_is_recorded_counted_and_returned(tmp_path: Path) -> None:
    calls: list[bool] = []
    shadow = Shadow(engine(tmp_path), lambda: calls.append(True))
    active = Decision(allow=True, revision="active-rev")
    candidate, extra = await compare(shadow, "delete", active)
    assert not candidate.allow and candidate.reasons == ("no deletes",)
    assert extra["policy_shadow"] == {"allow": False, "reasons": ["no deletes"], "revision": shadow.engine.revision}
    assert calls == [True] and (shadow.decisions, shadow.disagreements) == (1, 1)
    assert active.allow  # never enforced: the active decision is untouched


async def test_different_obligations_are_a_disagreement(tmp_path: Path) -> None:
    shadow = Shadow(engine(tmp_path))  # no callback: counted only
    candidate, extra = await compare(shadow, "pay", Decision(allow=True))
    assert candidate.obligations == {"require_approval": True} and "policy_shadow" in extra
    assert shadow.disagreements == 1


async def test_an_unavailable_candidate_denies_in_the_shadow_only(tmp_path: Path) -> None:
    shadow = Shadow(engine(tmp_path, text=None))
    candidate, extra = await compare(shadow, "add", Decision(allow=True))
    assert not candidate.allow and candidate.reasons[0].startswith("shadow policy could not be evaluated")
    assert extra["policy_shadow"]["allow"] is False
    ready, detail = await shadow.readiness()
    assert ready and detail.endswith("; 1 of 1 decisions disagreed") and "no policy loaded" in detail


async def test_readiness_reports_the_disagreement_ratio(tmp_path: Path) -> None:
    shadow = Shadow(engine(tmp_path))
    await compare(shadow, "add", Decision(allow=True))
    await compare(shadow, "delete", Decision(allow=True))
    ready, detail = await shadow.readiness()
    assert ready and detail.endswith("1 of 2 decisions disagreed") and "revision" in detail
