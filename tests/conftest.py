from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.idp import SigningKey, new_key
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


@pytest.fixture(scope="session")
def key_a() -> SigningKey:
    """An RSA signing key of the test identity provider."""
    return new_key("key-a")


@pytest.fixture(scope="session")
def key_b() -> SigningKey:
    """A second key, for rotation and wrong-key cases."""
    return new_key("key-b")
