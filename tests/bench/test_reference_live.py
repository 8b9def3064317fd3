"""The reference targets (nginx on the sidecar's core) run in the harness and are reported beside the sidecar's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from bench import reference
from tests.kit import ROOT, child_env

pytestmark = pytest.mark.skipif(reference.nginx_binary() is None, reason="nginx is not installed (.ci/run installs it)")

SCENARIOS = {
    "groups": [
        {"name": "sdk-modern", "upstream": "raw", "era": "modern", "targets": ["direct", "ref-nginx", "ref-static"]},
        {"name": "sdk-legacy", "upstream": "raw-sse", "era": "legacy", "targets": ["direct", "ref-nginx"]},
    ],
    "clients": [1, 32], "seconds": 0.3, "rounds": 2, "warmup_seconds": 0.1,
}


def test_nginx_references_are_measured_and_compared(tmp_path: Path) -> None:
    scenarios, readme = tmp_path / "scenarios.yaml", tmp_path / "README.md"
    scenarios.write_text(yaml.safe_dump(SCENARIOS))
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    done = subprocess.run([sys.executable, "-m", "bench.run", "--scenarios", str(scenarios), "--out", str(tmp_path),
                           "--readme", str(readme)], cwd=ROOT, env=child_env(), capture_output=True, timeout=50)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    results = orjson.loads((tmp_path / "latest.json").read_bytes())

    assert results["skipped"] == []
    measured = {(row["group"], row["target"], row["clients"]): row for row in results["results"]}
    for key in [("sdk-modern", "ref-nginx", 1), ("sdk-modern", "ref-static", 32), ("sdk-legacy", "ref-nginx", 32)]:
        row = measured[key]
        assert row["calls"] > 0 and row["errors"] == 0, row["error_samples"]
        assert row["cpu_us_per_call"] > 0 and row["peak_rss_mb"] > 0  # nginx's own accounting, one process
    text = readme.read_text()
    for comparison in ("ref-nginx / direct throughput at 32 clients, sdk-modern",
                       "ref-nginx / direct throughput at 32 clients, sdk-legacy",
                       "ref-static vs SDK upstream, p50 at 1 client"):
        assert f"| {comparison}" in text
    assert "passthrough / ref-nginx" not in text  # no sidecar target ran: nothing to compare, nothing made up
