"""`mcp-sidecar tools lock` and `tools diff` against real servers over Streamable HTTP, stdio and legacy SSE."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from proxy.tools.pinning import read_lock, tool_hash
from tests.kit import ROOT, child_env, free_port, serve_process

SERVERS = [sys.executable, "-m", "tests.integration.tool_safety_servers"]
DEMO = f"{sys.executable} -m proxy.runtime.demo stdio"


def sidecar(*args: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process, in `cwd`; stdio upstreams run in the checkout (they are test modules)."""
    environment = child_env(MCP_SIDECAR__UPSTREAM__CWD=str(ROOT), **env)
    return subprocess.run([sys.executable, "-m", "proxy", *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=timeout)


def stdio(kind: str, *extra: str) -> str:
    return " ".join([*SERVERS, kind, "stdio", *extra])


@pytest.fixture
def mutable_http() -> Iterator[str]:
    port = free_port()
    with serve_process([*SERVERS, "mutable", "http", "--port", str(port)], port) as url:
        yield url


def test_lock_over_stdio_pins_every_tool_and_prompt_and_diff_agrees(tmp_path: Path) -> None:
    locked = sidecar("tools", "lock", "--upstream-command", DEMO, cwd=tmp_path)
    assert locked.returncode == 0, locked.stderr
    assert "wrote tools.lock: 9 tools, 1 prompts, 0 resource templates of mcp-sidecar-demo 0.1.0" in locked.stdout
    snapshot = read_lock(tmp_path / "tools.lock")
    assert snapshot.server == {"name": "mcp-sidecar-demo", "version": "0.1.0"}
    assert set(snapshot.entries["prompts"]) == {"greet"}
    assert snapshot.tools["add"].hash == tool_hash(snapshot.tools["add"].definition)
    same = sidecar("tools", "diff", "--upstream-command", DEMO, cwd=tmp_path)
    assert (same.returncode, same.stdout) == (0, "the upstream matches tools.lock\n")


def test_a_rug_pull_over_http_shows_in_the_diff(tmp_path: Path, mutable_http: str) -> None:
    assert sidecar("tools", "lock", "--upstream", mutable_http, "--out", "pins.json", cwd=tmp_path).returncode == 0
    assert sidecar("tools", "diff", "--upstream", mutable_http, "--lock", "pins.json", cwd=tmp_path).returncode == 0
    rotate(mutable_http)
    drifted = sidecar("tools", "diff", "--upstream", mutable_http, "--lock", "pins.json", cwd=tmp_path)
    assert drifted.returncode == 1, drifted.stderr
    lines = drifted.stdout.splitlines()
    assert lines[0] == "changed tool fetch_notes"
    assert "    --- fetch_notes.description (locked)" in lines
    assert "    -Return the team's shared notes." in lines
    assert any(line.startswith("    +Return the team's shared notes. <IMPORTANT>Before using") for line in lines)


def rotate(url: str) -> None:
    async def call() -> None:
        async with Client(url) as client:
            assert not (await client.call_tool("rotate", {})).is_error

    import anyio

    anyio.run(call)


def test_update_is_needed_to_rewrite_a_lock_and_then_the_diff_is_clean(tmp_path: Path) -> None:
    assert sidecar("tools", "lock", "--upstream-command", stdio("mutable"), cwd=tmp_path).returncode == 0
    again = sidecar("tools", "lock", "--upstream-command", stdio("mutable", "--variant", "2"), cwd=tmp_path)
    assert again.returncode == 2 and "tools.lock exists" in again.stderr and "--update" in again.stderr
    diff = sidecar("tools", "diff", "--upstream-command", stdio("mutable", "--variant", "2"), cwd=tmp_path)
    assert diff.returncode == 1 and diff.stdout.startswith("changed tool fetch_notes\n")
    updated = sidecar("tools", "lock", "--update", "--upstream-command", stdio("mutable", "--variant", "2"),
                      cwd=tmp_path)
    assert updated.returncode == 0 and updated.stdout.startswith("changed tool fetch_notes\n")
    clean = sidecar("tools", "diff", "--upstream-command", stdio("mutable", "--variant", "2"), cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout


def test_the_lock_path_comes_from_config_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(f"upstream:\n  command: {DEMO}\ntools:\n  lock_file: reviewed/demo.lock\n")
    (tmp_path / "reviewed").mkdir()
    assert sidecar("tools", "lock", "--config", str(config), cwd=tmp_path).returncode == 0
    assert (tmp_path / "reviewed/demo.lock").exists()
    by_env = sidecar("tools", "diff", "--upstream-command", DEMO, cwd=tmp_path,
                     MCP_SIDECAR__TOOLS__LOCK_FILE="reviewed/demo.lock")
    assert by_env.returncode == 0, by_env.stderr


def test_legacy_sse_upstream_is_locked_through_the_handshake(tmp_path: Path) -> None:
    port = free_port()
    demo = [sys.executable, "-m", "proxy.runtime.demo", "sse", "--port", str(port)]
    with serve_process(demo, port, "/sse") as url:
        locked = sidecar("tools", "lock", "--upstream-sse", url, cwd=tmp_path)
    assert locked.returncode == 0, locked.stderr
    assert "delete_file" in read_lock(tmp_path / "tools.lock").tools


def test_a_broken_lock_is_an_error_naming_path_and_reason(tmp_path: Path) -> None:
    (tmp_path / "tools.lock").write_text("lock_version: 1\ntools: [{name: add, hash: nope, definition: {name: add}}]\n")
    broken = sidecar("tools", "diff", "--upstream-command", DEMO, cwd=tmp_path)
    assert broken.returncode == 2
    assert "tools.lock: tools[0] (add): hash 'nope' does not match its definition" in broken.stderr


@pytest.mark.parametrize("command", [["tools", "lock"], ["tools", "diff"], ["scan"]])
def test_an_unreachable_upstream_is_a_clear_error(tmp_path: Path, command: list[str]) -> None:
    if command[-1] == "diff":
        (tmp_path / "tools.lock").write_text("lock_version: 1\n")
    result = sidecar(*command, "--upstream", f"http://127.0.0.1:{free_port()}/mcp", cwd=tmp_path)
    assert result.returncode == 2
    assert "mcp-sidecar: cannot list the upstream http://127.0.0.1:" in result.stderr
    assert "unreachable" in result.stderr and result.stdout == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == (["tools.lock"] if command[-1] == "diff" else [])


def test_a_stdio_server_that_cannot_start_is_reported_within_the_startup_timeout(tmp_path: Path) -> None:
    result = sidecar("tools", "lock", "--upstream-command", str(tmp_path / "no-such-server"), cwd=tmp_path,
                     MCP_SIDECAR__UPSTREAM__STARTUP_TIMEOUT_SECONDS="1.5", timeout=20)
    assert result.returncode == 2
    assert "no answer within 1.5 s" in result.stderr and "No such file or directory" in result.stderr
    assert not (tmp_path / "tools.lock").exists()


def test_the_readme_tool_safety_commands_run_as_written(tmp_path: Path) -> None:
    """Every line of the README's block but the last (`serve`, a long-running process tested in
    test_pinning_sidecar.py), with .venv/bin pointing at this interpreter's."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Before agents reach a server"):]
    block = section[section.index("```sh\n") + 6:section.index("```", section.index("```sh\n") + 6)]
    lines = block.strip().splitlines()
    assert lines[-1].startswith("MCP_SIDECAR__TOOLS__LOCK_FILE=tools.lock .venv/bin/mcp-sidecar serve --demo")
    script = "set -e\n" + "\n".join(lines[:-1]).replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=child_env(MCP_SIDECAR__UPSTREAM__CWD=str(ROOT)),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrote tools.lock: 9 tools, 1 prompts" in result.stdout
    assert "the upstream matches tools.lock" in result.stdout
    assert "# MCP security report: mcp-sidecar-demo 0.1.0" in result.stdout
