"""Secret files follow rewrites and Kubernetes-style symlink swaps, checking the disk at most once per interval."""

from __future__ import annotations

import os
from pathlib import Path

from proxy.config import UpstreamHeader
from proxy.secret_files import SecretFile
from proxy.upstream.credentials import UpstreamCredentials


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def kubernetes_mount(root: Path, *versions: str) -> Path:
    """`root/token -> ..data/token`, `..data -> ..<first version>`; each version directory holds its token."""
    for version in versions:
        (root / f"..{version}").mkdir()
        (root / f"..{version}" / "token").write_text(f"token-{version}\n")
    (root / "..data").symlink_to(f"..{versions[0]}")
    (root / "token").symlink_to("..data/token")
    return root / "token"


def swap(root: Path, version: str) -> None:
    (root / "..data_tmp").symlink_to(f"..{version}")
    os.replace(root / "..data_tmp", root / "..data")


def test_symlink_swap_is_seen_after_the_check_interval(tmp_path: Path) -> None:
    clock = Clock()
    secret = SecretFile(str(kubernetes_mount(tmp_path, "v1", "v2")), check_interval=1.0, clock=clock)
    assert secret.read_text() == "token-v1"
    swap(tmp_path, "v2")
    clock.now += 0.5
    assert secret.read_text() == "token-v1"  # not checked yet: no system call per request
    clock.now += 0.6
    assert secret.read_text() == "token-v2"
    assert secret.version == 2


def test_rewrite_in_place_and_vanished_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("one")
    secret = SecretFile(str(path), check_interval=0)
    assert secret.read_text() == "one"
    path.write_text("second")
    assert secret.read_text() == "second"
    path.unlink()
    assert secret.read_text() == "second"  # a rotation in progress keeps the last good value


def test_credentials_from_value_env_and_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN_FOR_TEST", "from-env")
    path = tmp_path / "api-key"
    path.write_text("file-1\n")
    credentials = UpstreamCredentials({
        "X-Static": UpstreamHeader(value="fixed"),
        "Authorization": UpstreamHeader(env="UPSTREAM_TOKEN_FOR_TEST", prefix="Bearer "),
        "X-Api-Key": UpstreamHeader(file=str(path)),
    }, check_interval=0)
    first = credentials.headers()
    path.write_text("file-2\n")
    assert first == {"X-Static": "fixed", "Authorization": "Bearer from-env", "X-Api-Key": "file-1"}
    assert credentials.headers()["X-Api-Key"] == "file-2"
    assert not UpstreamCredentials({})
