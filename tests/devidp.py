"""Test kit for the development IdP: `mcp-sidecar dev-idp` and `token mint` run as a user would run them."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from proxy.runtime.dev_idp import issuer_file
from tests.kit import ROOT, child_env, stop_process


def sidecar_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "proxy", *args]


@contextlib.contextmanager
def running_dev_idp(state_dir: Path, listen: str = "127.0.0.1:0", timeout: float = 20.0) -> Iterator[str]:
    """`mcp-sidecar dev-idp` on loopback; yields its issuer URL once it is serving (it records the URL after
    binding)."""
    recorded = issuer_file(state_dir)
    recorded.unlink(missing_ok=True)
    process = subprocess.Popen(sidecar_cli("dev-idp", "--listen", listen, "--state-dir", str(state_dir)),
                               env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not recorded.exists():
            if process.poll() is not None:
                raise RuntimeError(f"dev-idp exited with {process.returncode}: {process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"dev-idp recorded no issuer within {timeout}s")
            time.sleep(0.05)
        yield recorded.read_text().strip()
    finally:
        stop_process(process)


def mint(state_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """A token from `mcp-sidecar token mint`, with the issuer the running dev-idp recorded."""
    done = subprocess.run(sidecar_cli("token", "mint", "--state-dir", str(state_dir), *args),
                          env=env or child_env(), capture_output=True, timeout=30, check=True)
    return done.stdout.decode().strip()


def role_policy_env(**extra: str) -> dict[str, str]:
    """A sidecar's environment with the shipped role policies (policies/) in force."""
    return child_env(MCP_SIDECAR__POLICY__ENGINE="rego", MCP_SIDECAR__POLICY__DIRECTORY=str(ROOT / "policies"),
                     **extra)
