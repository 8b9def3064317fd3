"""`make run PORT=P ADMIN_PORT=A`: the demo sidecar comes up on the ports given (the install step is taken as done:
this test's own virtual environment stands in for .venv)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.kit import ROOT, child_env, free_port, wait_for_port


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
async def test_make_run_listens_on_the_ports_given() -> None:
    port, admin = free_port(), free_port()
    venv = Path(sys.prefix)  # has bin/mcp-sidecar, as .venv after `make install`
    command = ["make", "-s", "run", f"VENV={venv}", f"PORT={port}", f"ADMIN_PORT={admin}", "-o", f"{venv}/.installed"]
    process = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_port(admin, process=process)
        wait_for_port(port, process=process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{admin}/healthz") as health:
                assert health.status == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # make and the sidecar it started
        process.communicate(timeout=15)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_install_shows_its_steps() -> None:
    dry = subprocess.run(["make", "-n", "install", "VENV=/nonexistent-venv"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, check=True)
    assert "[1/3]" in dry.stdout and "[3/3]" in dry.stdout
    assert "pip install --progress-bar on -e '.[dev]'" in dry.stdout  # pip's own progress, not -q
