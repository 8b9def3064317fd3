"""The README's first commands and its quick start, run as written (only the ports and the path of the command are
swapped for this test run's), so the front door cannot drift from the code."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kit import ROOT, free_port, stop_process, wait_for_port

README = ROOT / "README.md"
EXPECTATION = re.compile(r"^call .*#\s*(?P<verdict>allowed|denied):\s*(?P<fragment>.+?)\s*$")


@dataclass(frozen=True)
class Expected:
    verdict: str
    fragment: str


def quick_start_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Quick start"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def expectations(script: str) -> list[Expected]:
    found = []
    for line in script.splitlines():
        match = EXPECTATION.match(line)
        if match:
            fragment = match["fragment"]
            found.append(Expected(match["verdict"], fragment[1:-1] if fragment[0] == fragment[-1] == '"' else fragment))
    return found


@dataclass(frozen=True)
class Ports:
    idp: int
    sidecar: int
    admin: int

    def apply(self, command: str) -> str:
        command = command.replace(".venv/bin/mcp-sidecar", f"{shlex.quote(sys.executable)} -m proxy")
        return command.replace("127.0.0.1:9400", f"127.0.0.1:{self.idp}").replace(
            "127.0.0.1:8080", f"127.0.0.1:{self.sidecar}")


def user_env(ports: Ports) -> dict[str, str]:
    """A user's shell: none of the test kit's MCP_SIDECAR__* settings, only this run's listen addresses (which the
    README leaves at their defaults)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MCP_SIDECAR__")}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
            "MCP_SIDECAR__SERVER__LISTEN": f"127.0.0.1:{ports.sidecar}",
            "MCP_SIDECAR__SERVER__ADMIN_LISTEN": f"127.0.0.1:{ports.admin}"}


def wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear (process status {process.poll()})")
        time.sleep(0.05)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A working directory like the checkout's: the shipped policies, nothing else (the dev IdP's state lands here)."""
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    return tmp_path


@pytest.fixture
def background(checkout: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in reversed(started):
        stop_process(process)


def test_the_readme_starts_with_make_run_and_make_test() -> None:
    first_block = README.read_text().split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[:2] for line in first_block] == [["make", "run"], ["make", "test"]]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: install\n\t\$\(VENV\)/bin/mcp-sidecar serve --demo ", makefile, re.M)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the quick start calls the sidecar with curl")
def test_the_quick_start_runs_as_written(checkout: Path, background: list[subprocess.Popen[bytes]]) -> None:
    idp_block, serve_block, calls_block = quick_start_blocks()
    ports = Ports(free_port(), free_port(), free_port())
    env = user_env(ports)

    def start(block: str, output: Path) -> subprocess.Popen[bytes]:
        (command,) = block.strip().splitlines()
        with output.open("wb") as out:
            process = subprocess.Popen(["bash", "-c", ports.apply(command)], cwd=checkout, env=env, stdout=out,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
        background.append(process)
        return process

    wait_for_file(checkout / ".dev-idp" / "issuer", start(idp_block, checkout / "dev-idp.out"))
    terminal = checkout / "sidecar.out"  # what the sidecar's terminal shows: its audit lines
    wait_for_port(ports.sidecar, process=start(serve_block, terminal))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", ports.apply(calls_block)], cwd=checkout, env=env,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    answers = done.stdout.decode().splitlines()
    expected = expectations(calls_block)
    assert {item.verdict for item in expected} == {"allowed", "denied"}, "the quick start shows both outcomes"
    assert len(answers) == len(expected), answers
    for answer, item in zip(answers, expected, strict=True):
        assert item.fragment in answer, (item, answer)
        assert ('"isError":false' if item.verdict == "allowed" else '"isError":true') in answer, (item, answer)
    wait_until_written(terminal, audit_excerpt())


def audit_excerpt() -> str:
    """The audit line fragment the quick start shows (the plain block holding "outcome")."""
    text = README.read_text()
    section = text[text.index("## Quick start"):]
    return re.search(r'```\n("outcome":"denied".*)\n```', section)[1]


def wait_until_written(path: Path, fragment: str, timeout: float = 10.0) -> None:
    """Audit lines are flushed at the end of an event-loop pass: wait (bounded) until the fragment is there."""
    deadline = time.monotonic() + timeout
    while fragment not in path.read_text():
        assert time.monotonic() < deadline, f"{fragment!r} not in the sidecar's output:\n{path.read_text()[-3000:]}"
        time.sleep(0.05)
