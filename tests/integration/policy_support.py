"""Helpers for policy integration tests: callers with chosen identities, and what the policy stage passed on."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.context import CallContext, Principal
from proxy.pipeline import Handler
from proxy.reply import Reply
from tests.kit import ROOT, child_env, free_port, stop_process, wait_for_port

POLICIES = ROOT / "policies"


class PrincipalStage:
    """Test-only stand-in for the auth stage: every call comes from `self.principal` (None: anonymous)."""

    name = "test_principal"

    def __init__(self) -> None:
        self.principal: Principal | None = None

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        return await call_next(ctx if self.principal is None else ctx.evolve(principal=self.principal))


class SeenStage:
    """Sits inside the policy stage and notes the contexts it let through (obligations included)."""

    name = "test_seen"

    def __init__(self) -> None:
        self.contexts: list[CallContext] = []

    async def __call__(self, ctx: CallContext, call_next: Handler) -> Reply:
        self.contexts.append(ctx)
        return await call_next(ctx)

    def last(self, method: str) -> CallContext:
        return [ctx for ctx in self.contexts if ctx.method == method][-1]


def user(subject: str, *roles: str, **claims: Any) -> Principal:
    return Principal(subject=subject, issuer="https://idp.test", claims=claims, roles=frozenset(roles))


def install_identities(monkeypatch: pytest.MonkeyPatch) -> tuple[PrincipalStage, SeenStage]:
    """Wrap the real stage list: the test principal outermost, the recorder just inside policy."""
    import proxy.runtime.app

    principal, seen = PrincipalStage(), SeenStage()
    real = proxy.runtime.app.build_stages

    def build(config, deps):
        stages = real(config, deps)
        at = next((i for i, stage in enumerate(stages) if stage.name == "policy"), len(stages) - 1)
        return [principal, *stages[: at + 1], seen, *stages[at + 1 :]]

    monkeypatch.setattr(proxy.runtime.app, "build_stages", build)
    return principal, seen


def copy_policies(target: Path, source: Path = POLICIES) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*_test.rego", "README.md", "*.json.schema"))
    return target


@contextlib.contextmanager
def policy_tools_upstream() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("policy_tools_server.py")), str(port)],
                               env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(process)
