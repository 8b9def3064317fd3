"""`mcp-sidecar scan` and `tools lock` on the npm reference server (2025 handshake over stdio)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.tools.pinning import read_lock
from tests.e2e.test_published_stdio import everything  # noqa: F401 (the fixture)
from tests.integration.test_scan_cli import found, scan
from tests.integration.test_tools_cli import sidecar

pytestmark = pytest.mark.e2e


def test_server_everything_has_one_true_finding_and_no_false_positive(tmp_path: Path, everything: Path) -> None:  # noqa: F811
    document = scan(tmp_path, "--upstream-command", f"node {everything} stdio")
    assert document["server"]["name"] == "mcp-servers/everything"
    assert document["counts"]["tools"] >= 10 and document["counts"]["prompts"] >= 1
    # gzip-file-as-resource fetches a URL it is given, and says so (openWorldHint: true): a real, low finding.
    assert found(document) == {("risk.open-world", "gzip-file-as-resource", "annotations", "low")}


def test_server_everything_locks_tools_prompts_and_templates(tmp_path: Path, everything: Path) -> None:  # noqa: F811
    command = f"node {everything} stdio"
    assert sidecar("tools", "lock", "--upstream-command", command, cwd=tmp_path).returncode == 0
    snapshot = read_lock(tmp_path / "tools.lock")
    assert snapshot.entries["prompts"] and snapshot.entries["resource_templates"]
    assert sidecar("tools", "diff", "--upstream-command", command, cwd=tmp_path).returncode == 0
