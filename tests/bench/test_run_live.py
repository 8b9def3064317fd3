"""The benchmark harness runs end to end in its quick mode and writes the JSON it promises (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from tests.kit import ROOT, child_env

ROW_FIELDS = {"group", "upstream", "era", "target", "clients", "calls", "errors", "calls_per_s",
              "p50_ms", "p90_ms", "p99_ms"}
SIDECAR_FIELDS = {"cpu_us_per_call", "rss_mb", "peak_rss_mb"}


def test_quick_run_writes_results(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# bench\n\n<!-- results:start -->\n<!-- results:end -->\n")
    done = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(tmp_path),
                           "--readme", str(readme)], cwd=ROOT, env=child_env(), capture_output=True, timeout=50)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    results = orjson.loads((tmp_path / "latest.json").read_bytes())

    assert {"meta", "profiles", "skipped", "results", "checks"} <= results.keys()
    rows = results["results"]
    assert {(row["target"], row["clients"]) for row in rows} == {
        ("direct", 1), ("direct", 32), ("passthrough", 1), ("passthrough", 32)}
    for row in rows:
        assert row.keys() >= ROW_FIELDS
        assert row["calls"] > 0 and row["calls_per_s"] > 0
        assert row["errors"] == 0, row["error_samples"]
        if row["target"] == "passthrough":
            assert row.keys() >= SIDECAR_FIELDS
            assert row["cpu_us_per_call"] > 0 and row["peak_rss_mb"] > 0
    assert all({"name", "measured", "target", "ok"} <= check.keys() for check in results["checks"])
    assert "| raw-modern | passthrough | 32 |" in readme.read_text()
