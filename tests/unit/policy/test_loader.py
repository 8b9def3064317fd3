"""Reading a policy directory, its revision, and swapping bundles only when they compile."""

from __future__ import annotations

import faulthandler
import os
from pathlib import Path

import pytest

from proxy.policy import loader as loader_module
from proxy.policy.loader import PolicyLoader, RegoEngine, load, read_source
from proxy.policy.rego import PolicyCompileError

POLICY = 'package mcp\nimport rego.v1\ndecision := {"allow": data.settings.open}\n'


def write(directory: Path, name: str, text: str) -> None:
    (directory / name).parent.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)


def test_data_files_merge_under_their_directory_and_tests_stay_out(tmp_path: Path) -> None:
    write(tmp_path, "p.rego", POLICY)
    write(tmp_path, "p_test.rego", "package t\ntest_x := true\n")
    write(tmp_path, "data.json", '{"settings": {"open": true}}')
    write(tmp_path, "teams/data.yaml", "payments: {owner: ann}\n")
    source = read_source(tmp_path)
    assert list(source.modules) == [str(tmp_path / "p.rego")]
    assert source.data == {"settings": {"open": True}, "teams": {"payments": {"owner": "ann"}}}
    assert source.revision.startswith("sha256:")
    assert len(read_source(tmp_path, include_tests=True).modules) == 2


def test_test_data_replaces_its_directorys_data_for_tests_only(tmp_path: Path) -> None:
    write(tmp_path, "p.rego", POLICY)
    write(tmp_path, "data.json", '{"settings": {"open": false}}')
    write(tmp_path, "data_test.json", '{"settings": {"open": true}}')
    write(tmp_path, "teams/data.yaml", "payments: {owner: ann}\n")  # no test data beside it: used by both
    assert read_source(tmp_path).data == {"settings": {"open": False}, "teams": {"payments": {"owner": "ann"}}}
    assert read_source(tmp_path, include_tests=True).data == {"settings": {"open": True},
                                                              "teams": {"payments": {"owner": "ann"}}}


def test_manifest_revision_wins(tmp_path: Path) -> None:
    write(tmp_path, "p.rego", POLICY)
    write(tmp_path, ".manifest", '{"revision": "release-42"}')
    assert read_source(tmp_path).revision == "release-42"


def test_bad_data_and_empty_directories_are_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyCompileError, match=r"no \.rego files"):
        read_source(tmp_path)
    write(tmp_path, "p.rego", POLICY)
    write(tmp_path, "data.json", "{nope")
    with pytest.raises(PolicyCompileError, match=r"data\.json: invalid JSON"):
        read_source(tmp_path)
    with pytest.raises(PolicyCompileError, match="policy directory not found"):
        read_source(tmp_path / "missing")


async def test_check_once_swaps_good_and_keeps_last_good(tmp_path: Path) -> None:
    write(tmp_path, "p.rego", POLICY)
    write(tmp_path, "data.json", '{"settings": {"open": true}}')
    loader = PolicyLoader(tmp_path, reload_interval=None)
    loader.load_initial()
    engine = RegoEngine(loader)
    assert (await engine.evaluate("decision", {}))[0] == {"allow": True}
    assert await loader.check_once() is False  # nothing changed
    write(tmp_path, "data.json", '{"settings": {"open": false}}')
    os.utime(tmp_path / "data.json", ns=(1, 1))
    assert await loader.check_once() is True
    assert (await engine.evaluate("decision", {}))[0] == {"allow": False}
    good = engine.revision
    write(tmp_path, "p.rego", "package mcp\ndecision := {\n")
    assert await loader.check_once() is False
    assert await loader.check_once() is False  # the same broken files are not retried
    assert loader.reload_failures == 1 and engine.revision == good
    ok, detail = await engine.readiness()
    assert ok and "reload failed (1 so far)" in detail and "p.rego:2:" in detail


def test_a_crashing_compile_costs_a_failed_load_not_the_process(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, "p.rego", POLICY)
    parent = os.getpid()
    real = loader_module.compile_policy

    def crashing(modules, data=None):
        if os.getpid() != parent:
            faulthandler.disable()  # no traceback dump from the child on its way down
            os.abort()  # what rego-cpp does on some inputs
        return real(modules, data)

    monkeypatch.setattr(loader_module, "compile_policy", crashing)
    with pytest.raises(PolicyCompileError, match="the Rego engine crashed compiling this policy"):
        load(tmp_path)
