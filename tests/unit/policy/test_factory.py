"""build_engine: the in-process Rego bundle (reload or not, exit or deny on a bad load) or a remote OPA client."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import PolicyConfig
from proxy.policy.engine import PolicyLoadError, PolicyUnavailableError
from proxy.policy.factory import build_engine
from proxy.policy.loader import RegoEngine
from proxy.policy.opa import OpaEngine

GOOD = 'package mcp\nimport rego.v1\ndecision := {"allow": true}\n'
BROKEN = "package mcp\ndecision := {\n"


def directory(tmp_path: Path, text: str) -> Path:
    (tmp_path / "p.rego").write_text(text)
    return tmp_path


async def test_a_good_directory_gives_a_rego_engine_that_decides(tmp_path: Path) -> None:
    engine = build_engine(PolicyConfig(reload=False), directory(tmp_path, GOOD), "policy")
    assert isinstance(engine, RegoEngine) and engine.loader.reload_interval is None
    value, revision = await engine.evaluate("decision", {})
    assert value == {"allow": True} and revision == engine.revision and revision is not None


def test_reload_watches_at_the_configured_interval(tmp_path: Path) -> None:
    engine = build_engine(PolicyConfig(reload_interval_seconds=2.5), directory(tmp_path, GOOD), "shadow")
    assert isinstance(engine, RegoEngine)
    assert engine.loader.reload_interval == 2.5 and engine.loader.label == "shadow"


def test_a_broken_policy_stops_startup_with_its_problems(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError) as caught:
        build_engine(PolicyConfig(), directory(tmp_path, BROKEN), "policy")
    assert caught.value.directory == tmp_path and caught.value.problems
    assert str(tmp_path) in str(caught.value) and "p.rego" in "\n".join(caught.value.problems)


def test_a_missing_directory_stops_startup(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="not found"):
        build_engine(PolicyConfig(), tmp_path / "missing", "policy")


async def test_deny_on_load_error_starts_and_refuses_every_evaluation(tmp_path: Path) -> None:
    failures: list[bool] = []
    engine = build_engine(PolicyConfig(on_load_error="deny", reload=False), directory(tmp_path, BROKEN), "policy",
                          on_failure=lambda: failures.append(True))
    assert failures == [True] and engine.revision is None
    with pytest.raises(PolicyUnavailableError, match="no policy bundle"):
        await engine.evaluate("decision", {})
    ready, detail = await engine.readiness()
    assert not ready and "no policy loaded" in detail


async def test_opa_engine_takes_url_and_timeout(tmp_path: Path) -> None:
    engine = build_engine(PolicyConfig(engine="opa", opa_url="http://opa:8181/", opa_timeout_seconds=0.2),
                          tmp_path / "unused", "policy")
    assert isinstance(engine, OpaEngine)
    assert (engine.url, engine.timeout_seconds) == ("http://opa:8181", 0.2)
    with pytest.raises(PolicyUnavailableError, match="not started"):
        await engine.evaluate("decision", {})


async def test_the_first_reload_poll_does_not_retry_the_files_that_failed_at_startup(tmp_path: Path) -> None:
    failures: list[bool] = []
    engine = build_engine(PolicyConfig(on_load_error="deny"), directory(tmp_path, BROKEN), "policy",
                          on_failure=lambda: failures.append(True))
    assert isinstance(engine, RegoEngine)
    assert await engine.loader.check_once() is False
    assert len(failures) == 1 and engine.loader.reload_failures == 1
