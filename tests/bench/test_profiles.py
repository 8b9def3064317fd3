"""Benchmark profiles: parts this build lacks are reported missing, bad ones invalid, never faked."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import profiles
from bench.report import checks, references, yardstick

BASE = {"server": {"listen": "127.0.0.1:1", "admin_listen": "127.0.0.1:2"}, "upstream": {"url": "http://u/mcp"},
        "auth": {"mode": "off"}}


@pytest.fixture
def profile_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    return tmp_path


def test_parts_are_kept_missing_or_invalid(profile_dir: Path) -> None:
    (profile_dir / "mix.yaml").write_text(
        "parts:\n"
        "  audit:\n    audit: {enabled: true, sink: file, path: '{tmp}/a.jsonl'}\n"
        "    load: {headers: {X-Run: '{run_id}'}}\n"
        "  teleportation:\n    teleport: {enabled: true}\n"
        "  broken audit:\n    audit: {sink: nowhere}\n"
    )
    profile = profiles.load_profile("mix", BASE, {"tmp": "/t", "run_id": "r1"})

    assert profile.on == ["audit"]
    assert profile.overlay == {"audit": {"enabled": True, "sink": "file", "path": "/t/a.jsonl"}}
    assert profile.load == {"headers": {"X-Run": "r1"}}
    assert profile.missing == ["teleportation (no `teleport` config in this build)"]
    assert list(profile.invalid) == ["broken audit"]
    assert profile.skip_reason is None


def test_a_profile_without_its_defining_part_is_skipped(profile_dir: Path) -> None:
    (profile_dir / "warp.yaml").write_text("needs_any: [warp]\nparts:\n  warp:\n    warp_drive: {}\n")
    profile = profiles.load_profile("warp", BASE, {})
    assert profile.skip_reason == "needs one of: warp (not in this build)"


def test_checks_compare_within_the_run_and_leave_the_unmeasured_open() -> None:
    row = {"group": "sdk-modern", "clients": 32, "p50_ms": 2.0}
    results = [{**row, "target": "direct", "calls_per_s": 600.0},
               {**row, "target": "full", "calls_per_s": 580.0, "peak_rss_mb": 80.0}]
    verdicts = {check["name"]: check for check in checks(results)}
    throughput = verdicts["full / direct throughput, SDK upstream (modern), 32 clients"]
    assert throughput["measured"] == pytest.approx(0.967, abs=1e-3) and throughput["ok"] is True
    assert verdicts["highest sidecar peak RSS at 32 clients, MB"]["ok"] is True
    assert verdicts["cache hit vs SDK upstream, p50 at 1 client (times faster)"]["ok"] is None


def test_the_yardstick_divides_sidecar_cpu_by_the_raw_upstream_s_own_in_the_same_run() -> None:
    row = {"group": "raw-modern", "clients": 1}
    results = [{**row, "target": "direct", "upstream_cpu_us_per_call": 100.0},
               {**row, "target": "passthrough", "cpu_us_per_call_best_round": 150.0},
               {**row, "target": "full", "clients": 32, "cpu_us_per_call_best_round": 300.0}]  # no 32-client base
    assert yardstick(results) == [{"target": "passthrough", "clients": 1, "raw_upstream_cpu_us": 100.0,
                                   "sidecar_cpu_us": 150.0, "times_raw_upstream": 1.5}]


def test_references_compare_the_sidecar_with_nginx_in_the_same_run() -> None:
    row = {"group": "sdk-modern", "clients": 32, "p50_ms": 2.0}
    results = [{**row, "target": "direct", "calls_per_s": 1000.0},
               {**row, "target": "ref-nginx", "calls_per_s": 880.0, "peak_rss_mb": 8.0},
               {**row, "target": "full", "calls_per_s": 900.0, "peak_rss_mb": 100.0}]
    found = dict(references(results))
    assert found == {"ref-nginx / direct throughput at 32 clients, sdk-modern": 0.88,
                     "full / ref-nginx throughput at 32 clients, sdk-modern": pytest.approx(1.023, abs=1e-3)}
    # nginx's memory is no sidecar's: the RSS target reads the sidecar rows only
    rss = {check["name"]: check for check in checks(results)}["highest sidecar peak RSS at 32 clients, MB"]
    assert rss["measured"] == 100.0


def test_a_check_gives_the_round_by_round_spread_of_its_comparison() -> None:
    row = {"group": "sdk-modern", "clients": 32, "p50_ms": 2.0}
    results = [{**row, "target": "direct", "calls_per_s": 1000.0,
                "rounds": [{"calls_per_s": 1000.0}, {"calls_per_s": 800.0}]},
               {**row, "target": "full", "calls_per_s": 900.0,
                "rounds": [{"calls_per_s": 1100.0}, {"calls_per_s": 640.0}]}]
    verdicts = {check["name"]: check for check in checks(results)}
    throughput = verdicts["full / direct throughput, SDK upstream (modern), 32 clients"]
    assert throughput["rounds"] == "0.80 .. 1.10"
    assert verdicts["highest sidecar peak RSS at 32 clients, MB"]["rounds"] is None
