"""UpstreamCredentials: the sidecar's own headers for the upstream, from literals, env or files that rotate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from proxy.config import UpstreamHeader
from proxy.upstream.credentials import UpstreamCredentials


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_no_headers_is_falsy() -> None:
    credentials = UpstreamCredentials({})
    assert not credentials and credentials.headers() == {}


def test_literal_and_env_values_with_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", "from-env")
    credentials = UpstreamCredentials({
        "X-Api-Key": UpstreamHeader(value="k1"),
        "Authorization": UpstreamHeader(env="UPSTREAM_TOKEN", prefix="Bearer "),
    })
    assert credentials and credentials.headers() == {"X-Api-Key": "k1", "Authorization": "Bearer from-env"}


def test_env_values_are_fixed_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", "first")
    credentials = UpstreamCredentials({"Authorization": UpstreamHeader(env="UPSTREAM_TOKEN")})
    monkeypatch.setenv("UPSTREAM_TOKEN", "second")
    assert credentials.headers() == {"Authorization": "first"}


def test_a_file_secret_loses_its_newline_and_follows_rotation(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("old-token\n")
    clock = Clock()
    credentials = UpstreamCredentials({"Authorization": UpstreamHeader(file=str(secret), prefix="Bearer "),
                                       "X-Tenant": UpstreamHeader(value="t1")}, check_interval=1.0, clock=clock)
    first = credentials.headers()
    assert first == {"Authorization": "Bearer old-token", "X-Tenant": "t1"}
    fresh = tmp_path / "token.new"
    fresh.write_text("new-token\n")
    os.replace(fresh, secret)  # as a Kubernetes secret rotates: a new file under the same name
    assert credentials.headers()["Authorization"] == "Bearer old-token"  # not checked again within the interval
    clock.now += 1.0
    assert credentials.headers()["Authorization"] == "Bearer new-token"
    assert first["Authorization"] == "Bearer old-token"  # a snapshot taken earlier is not changed


def test_a_secret_file_that_vanishes_keeps_its_last_value(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("kept")
    clock = Clock()
    credentials = UpstreamCredentials({"Authorization": UpstreamHeader(file=str(secret))}, clock=clock)
    assert credentials.headers() == {"Authorization": "kept"}
    secret.unlink()
    clock.now += 5
    assert credentials.headers() == {"Authorization": "kept"}
