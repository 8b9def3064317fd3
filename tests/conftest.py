from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kit import start_upstream


@pytest.fixture(scope="session")
def stateful_upstream() -> Iterator[str]:
    """The demo server with sessions and SSE responses (the SDK's default)."""
    with start_upstream("stateful") as url:
        yield url


@pytest.fixture(scope="session")
def stateless_upstream() -> Iterator[str]:
    """The demo server in stateless mode with JSON responses."""
    with start_upstream("stateless") as url:
        yield url


@pytest.fixture(scope="session", params=["stateful", "stateless"])
def upstream_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_upstream")
