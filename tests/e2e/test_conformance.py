"""The official MCP conformance suite, against a conformance-capable server directly and through the sidecar.

`@modelcontextprotocol/conformance` 0.1.16 (pinned in tests/e2e/conformance/package-lock.json, installed into
.tools/conformance by tests/e2e/conformance/install.sh) runs all 32 server scenarios (`--suite all`, 47 checks)
against tests/e2e/conformance/server.py, once at its own URL and once through an in-process sidecar with default
settings. The whole suite takes about two seconds per run, so nothing is left out. Every scenario must end with
the same checks in the same states (SUCCESS, FAILURE, WARNING, INFO) both ways.

server-sse-polling exercises SEP-1699 resumption: the tool closes its POST stream mid-call and the client fetches
the result with a GET carrying Last-Event-ID (the server offers this on every handshake version, see
`resumable_on_every_handshake_version` in server.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit import ROOT, free_port, make_config, run_sidecar, serve_process

pytestmark = pytest.mark.e2e

HERE = ROOT / "tests" / "e2e" / "conformance"
SUITE = ROOT / ".tools" / "conformance" / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
SCENARIO_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
SUITE_TIMEOUT_SECONDS = 60
SCENARIOS = 32
DIRECT_PASSED_CHECKS = 47

Results = dict[str, list[tuple[str, str]]]

if shutil.which("node") is None or shutil.which("npm") is None:
    pytest.skip("node and npm are needed to run the MCP conformance suite", allow_module_level=True)


@pytest.fixture(scope="module")
def suite() -> Path:
    """The pinned suite; install.sh is a no-op when `make test` already ran it."""
    subprocess.run(["sh", str(HERE / "install.sh")], check=True, timeout=300)
    assert SUITE.is_file(), f"install.sh did not install {SUITE}"
    return SUITE


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = free_port()
    with serve_process([sys.executable, str(HERE / "server.py"), "--port", str(port)], port) as url:
        yield url


async def run_suite(suite: Path, url: str, out: Path) -> Results:
    """Run every server scenario against `url`; per scenario, the (check id, status) list the suite recorded."""
    command = ["node", "--import", str(HERE / "shim-register.mjs"), str(suite), "server", "--url", url,
               "--suite", "all", "-o", str(out)]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(SUITE_TIMEOUT_SECONDS):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    results = read_results(out)
    assert results, f"the suite wrote no results:\n{output.decode(errors='replace')[-2000:]}"
    return results


def read_results(out: Path) -> Results:
    """The suite writes <out>/server-<scenario>-<timestamp>/checks.json per scenario."""
    results: Results = {}
    for checks_file in out.glob("*/checks.json"):
        match = SCENARIO_DIR.match(checks_file.parent.name)
        assert match, f"unexpected result directory {checks_file.parent.name}"
        checks = json.loads(checks_file.read_text())
        results[match["scenario"]] = [(check["id"], check["status"]) for check in checks]
    return results


def count(results: Results, status: str) -> int:
    return sum(1 for checks in results.values() for _, state in checks if state == status)


def scenarios_passed(results: Results) -> set[str]:
    return {name for name, checks in results.items() if all(state != "FAILURE" for _, state in checks)}


async def test_direct_run_passes_every_scenario(suite: Path, server_url: str, tmp_path: Path) -> None:
    """The baseline is not vacuous: all 32 scenarios run and all 47 checks pass against the server itself."""
    direct = await run_suite(suite, server_url, tmp_path / "direct")
    assert len(direct) == SCENARIOS
    troubled = {name: checks for name, checks in direct.items()
                if any(state in ("FAILURE", "WARNING") for _, state in checks)}
    assert count(direct, "FAILURE") == count(direct, "WARNING") == 0, troubled
    assert count(direct, "SUCCESS") >= DIRECT_PASSED_CHECKS, troubled


async def test_sidecar_scores_the_same_as_direct(suite: Path, server_url: str, tmp_path: Path) -> None:
    direct = await run_suite(suite, server_url, tmp_path / "direct")
    async with run_sidecar(make_config(server_url)) as sidecar:
        proxied = await run_suite(suite, sidecar.url, tmp_path / "sidecar")
    differing = {name: (direct[name], proxied.get(name)) for name in direct if proxied.get(name) != direct[name]}
    assert not differing, f"scenarios that differ through the sidecar (direct, sidecar): {differing}"
    assert proxied.keys() == direct.keys()
    assert scenarios_passed(proxied) == scenarios_passed(direct) == set(direct)
    assert count(proxied, "SUCCESS") == count(direct, "SUCCESS") >= DIRECT_PASSED_CHECKS
