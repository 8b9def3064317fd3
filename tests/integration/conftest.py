"""Fixtures shared by the policy tests (the test identity provider and the upstream with the policy test tools), by
the TLS tests (certificate authorities, rotation looked at on every handshake), by the connection pool tests
(scripted origins) and by the listener tests (an HTTP/1.1 server with small handlers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from proxy.net import tls as net_tls
from tests.integration.listener_support import Listening, serve
from tests.integration.policy_support import install_identities, policy_tools_upstream
from tests.integration.pool_support import Handler, Origin, Origins
from tests.tls_kit import Pki


@pytest.fixture
def identities(monkeypatch: pytest.MonkeyPatch):
    return install_identities(monkeypatch)


@pytest.fixture(scope="module")
def tools_upstream() -> Iterator[str]:
    with policy_tools_upstream() as url:
        yield url


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path, "server")


@pytest.fixture
def client_pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path, "clients")


@pytest.fixture
def rotation_checked_on_every_handshake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net_tls, "CHECK_SECONDS", 0.0)


@pytest.fixture
async def origin_of() -> AsyncIterator[Callable[[Handler], Awaitable[Origin]]]:
    origins = Origins()
    yield origins.start
    origins.close()


@pytest.fixture
async def listening() -> AsyncIterator[Listening]:
    async with serve() as served:
        yield served
