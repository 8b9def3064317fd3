"""A policy mounted from a Kubernetes ConfigMap: the kubelet writes each version into a timestamped hidden
directory, points the `..data` symlink at it, and exposes every key as a symlink through `..data`; an update is
one atomic rename of a new `..data` link over the old one, then the old directory goes. The loader must see that
swap even when the new files have the old files' sizes and modification times. git-sync does the same with one
link to a checkout of each commit (`current` -> `.worktrees/<commit>`), the policy directory below it."""

from __future__ import annotations

import os
from pathlib import Path

from proxy.policy.loader import PolicyLoader, RegoEngine, read_source

POLICY = 'package mcp\nimport rego.v1\ndecision := {"allow": data.settings.mode == "open"}\n'
KEYS = ("mcp.rego", "data.json")
SAME_TIME = (1_700_000_000_000_000_000, 1_700_000_000_000_000_000)


def write_files(directory: Path, mode: str) -> Path:
    """The policy's files, of one size and one modification time whatever the mode (4 letters)."""
    directory.mkdir(parents=True)
    (directory / "mcp.rego").write_text(POLICY)
    (directory / "data.json").write_text('{"settings": {"mode": "%s"}}' % mode)  # noqa: UP031
    for key in KEYS:
        os.utime(directory / key, ns=SAME_TIME)
    return directory


def write_version(mount: Path, stamp: str, mode: str) -> Path:
    """One version as the kubelet writes it: `..<timestamp>/` holding the keys' files."""
    return write_files(mount / f"..{stamp}", mode)


def first_mount(mount: Path) -> Path:
    version = write_version(mount, "2026_12_08_02_00_00.000000001", "open")
    (mount / "..data").symlink_to(version.name)
    for key in KEYS:
        (mount / key).symlink_to(f"..data/{key}")
    return version


def swap(mount: Path, old: Path, stamp: str, mode: str) -> None:
    """The update: a new version, `..data_tmp` -> it, renamed over `..data` (atomic), the old version removed."""
    version = write_version(mount, stamp, mode)
    (mount / "..data_tmp").symlink_to(version.name)
    os.rename(mount / "..data_tmp", mount / "..data")
    for key in KEYS:
        (old / key).unlink()
    old.rmdir()


def test_the_mount_reads_as_the_keys_only(tmp_path: Path) -> None:
    first_mount(tmp_path)
    source = read_source(tmp_path)
    assert list(source.modules) == [str(tmp_path / "mcp.rego")]  # not again through ..data or the hidden version
    assert source.data == {"settings": {"mode": "open"}}


async def test_a_configmap_update_is_picked_up(tmp_path: Path) -> None:
    old = first_mount(tmp_path)
    loader = PolicyLoader(tmp_path, reload_interval=None)
    loader.load_initial()
    engine = RegoEngine(loader)
    assert (await engine.evaluate("decision", {}))[0] == {"allow": True}
    assert await loader.check_once() is False

    swap(tmp_path, old, "2026_12_08_02_05_00.000000002", "shut")  # same sizes, same times, other content
    assert (tmp_path / "data.json").stat().st_size == len('{"settings": {"mode": "open"}}')
    assert await loader.check_once() is True
    assert (await engine.evaluate("decision", {}))[0] == {"allow": False}
    assert await loader.check_once() is False  # and once only


async def test_a_git_sync_checkout_swap_is_picked_up(tmp_path: Path) -> None:
    def checkout(commit: str, mode: str) -> Path:
        write_files(tmp_path / ".worktrees" / commit / "policies", mode)
        return tmp_path / ".worktrees" / commit

    (tmp_path / "current").symlink_to(checkout("aaaa", "open").relative_to(tmp_path))
    loader = PolicyLoader(tmp_path / "current" / "policies", reload_interval=None)
    loader.load_initial()
    engine = RegoEngine(loader)
    assert (await engine.evaluate("decision", {}))[0] == {"allow": True}
    (tmp_path / "current-new").symlink_to(checkout("bbbb", "shut").relative_to(tmp_path))
    os.rename(tmp_path / "current-new", tmp_path / "current")  # git-sync's atomic switch to the new commit
    assert await loader.check_once() is True
    assert (await engine.evaluate("decision", {}))[0] == {"allow": False}
