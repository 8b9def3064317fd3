"""Fixtures shared by the policy tests: the test identity provider and the upstream with the policy test tools."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.policy_support import install_identities, policy_tools_upstream


@pytest.fixture
def identities(monkeypatch: pytest.MonkeyPatch):
    return install_identities(monkeypatch)


@pytest.fixture(scope="module")
def tools_upstream() -> Iterator[str]:
    with policy_tools_upstream() as url:
        yield url
