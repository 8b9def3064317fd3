"""The instruction-count perf gate: instructions per call of the sidecar, counted by callgrind, held to a budget.

    python -m bench.perf_gate            # measure every case, compare with bench/perf_budget.json (exit 1 if over)
    python -m bench.perf_gate --record   # measure and write the figures as the new budget

Instructions, not seconds: callgrind counts the same total for the same binary, inputs and environment whatever
else the machine runs, so a budget can be tight (3% by default) without being noisy. Each case starts the raw
upstream (canned answers), then the sidecar under `valgrind --tool=callgrind` with counting off; after a warm-up
(imports, first-call caches, the pool's connection) counting is switched on for a fixed series of identical-shape
calls and the dump's total is divided by their number. Every thread of the sidecar counts (the span export thread
too), so work moved off the event loop is still paid for.

The Rego engine cannot run under valgrind (rego-cpp's allocator aborts), so the gate's full pipeline is every other
stage: JWT auth, memory rate limits, the audit file and tracing with OTLP export. The policy's cost is measured by
bench/policy_bench.py instead.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.credentials import bench_credentials
from bench.matrix import OFF_BY_BASE
from bench.procs import ROOT, Proc, free_port

BUDGET_FILE = Path(__file__).resolve().parent / "perf_budget.json"
TOLERANCE = 0.03
WARMUP_CALLS = 60
COUNTED_CALLS = 200
# What would make the count depend on the clock instead of the calls: span batches leave by size only (every 100
# spans, so the export's encoding is counted), the metric push and hash randomisation are off.
COUNTABLE_ENV = {"PYTHONHASHSEED": "0", "OTEL_BSP_SCHEDULE_DELAY": "3600000", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100",
                 "OTEL_METRIC_EXPORT_INTERVAL": "3600000"}
MODERN = "2026-07-28"
MODERN_META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {},
               "io.modelcontextprotocol/clientInfo": {"name": "perf-gate", "version": "1.0"}}


@dataclass(frozen=True)
class Case:
    name: str
    overlay: dict[str, Any]
    repeat: bool = False  # the same arguments every call (cache hits)
    authorized: bool = False


def cases(tmp: Path, credentials: dict[str, str], otlp_url: str) -> list[Case]:
    auth = {"mode": "required", "public_key_files": [credentials["jwt_public_key"]],
            "issuers": [credentials["jwt_issuer"]], "audience": [credentials["jwt_audience"]]}
    huge = 100_000_000
    limits = {"backend": "memory", "buckets": [
        {"name": "per-subject", "capacity": huge, "refill_per_second": huge, "key": ["subject"]},
        {"name": "per-tool", "capacity": huge, "refill_per_second": huge, "key": ["tool"],
         "match": {"methods": ["tools/call"]}}]}
    return [
        Case("passthrough", {}),
        Case("cache-hit", {"cache": {"enabled": True, "backend": "memory",
                                     "tools": {"echo": {"ttl_seconds": 600, "scope": "public"}}}}, repeat=True),
        Case("full-without-policy", {
            "auth": auth, "rate_limits": limits,
            "audit": {"enabled": True, "sink": "file", "path": str(tmp / "audit.jsonl")},
            "telemetry": {"enabled": True, "otlp_endpoint": otlp_url, "sampling_ratio": 1.0, "prometheus": True},
        }, authorized=True),
    ]


class Caller:
    """One keep-alive client sending modern-era tools/call requests, numbered so that every run sends the same."""

    def __init__(self, port: int, token: str | None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                        "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.number = 0

    def call(self, repeat: bool) -> None:
        self.number += 1
        text = "same" if repeat else f"call-{self.number:06d}"
        body = orjson.dumps({"jsonrpc": "2.0", "id": self.number, "method": "tools/call",
                             "params": {"name": "echo", "arguments": {"text": text}, "_meta": MODERN_META}})
        self.connection.request("POST", "/mcp", body=body, headers=self.headers)
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 200 or b'"result"' not in answer:
            raise RuntimeError(f"call {self.number} answered HTTP {response.status}: {answer[:200]!r}")


def measure(case: Case, work: Path, upstream_url: str, token: str) -> int:
    """Instructions per counted call of one sidecar configuration."""
    port, admin = free_port(), free_port()
    base = {"server": {"listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{admin}"},
            "upstream": {"url": upstream_url}, "logging": {"level": "warning"}, **OFF_BY_BASE}
    config = work / f"sidecar-{case.name}.yaml"
    config.write_text(yaml.safe_dump({**base, **case.overlay}))
    out = work / f"callgrind-{case.name}.out"
    args = ["--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            sys.executable, "-m", "proxy", "serve", "--config", str(config)]
    sidecar = Proc(f"callgrind-{case.name}", args, port, program="valgrind", env=COUNTABLE_ENV).start(work)
    try:
        sidecar.wait_ready(timeout=180)
        caller = Caller(port, token if case.authorized else None)
        for _ in range(WARMUP_CALLS):
            caller.call(case.repeat)
        _control(sidecar.pid, "--instr=on")
        for _ in range(COUNTED_CALLS):
            caller.call(case.repeat)
        _control(sidecar.pid, "--dump")
        caller.connection.close()
        return round(_dumped_total(out) / COUNTED_CALLS)
    finally:
        sidecar.stop(timeout=30)


def _control(pid: int, action: str) -> None:
    subprocess.run(["callgrind_control", action, str(pid)], check=True, capture_output=True, timeout=120)


def _dumped_total(out: Path) -> int:
    dumps = sorted(out.parent.glob(out.name + "*"), key=lambda path: path.stat().st_mtime)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in reversed(dumps or sorted(out.parent.glob(out.name + "*"))):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        time.sleep(0.2)
        dumps = sorted(out.parent.glob(out.name + "*"), key=lambda path: path.stat().st_mtime)
    raise RuntimeError(f"callgrind wrote no total to {out}*")


def run(work: Path) -> dict[str, int]:
    credentials = bench_credentials(work)
    upstream_port, sink_port = free_port(), free_port()
    upstream = Proc("upstream-raw", ["-m", "bench.upstream_raw", "--port", str(upstream_port)], upstream_port)
    sink = Proc("otlp-sink", ["-m", "bench.otlp_sink", "--port", str(sink_port)], sink_port)
    for helper in (upstream, sink):
        helper.start(work).wait_ready()
    try:
        upstream_url = f"http://127.0.0.1:{upstream_port}/mcp"
        return {case.name: measure(case, work, upstream_url, credentials["jwt_token"])
                for case in cases(work, credentials, f"http://127.0.0.1:{sink_port}")}
    finally:
        upstream.stop()
        sink.stop()


def over_budget(figures: dict[str, int], budget: dict[str, int], tolerance: float) -> list[str]:
    problems = []
    for name, figure in figures.items():
        allowed = budget.get(name)
        if allowed is None:
            problems.append(f"{name}: no budget (run with --record)")
        elif figure > allowed * (1 + tolerance):
            growth = figure / allowed - 1
            problems.append(f"{name}: {figure:,} instructions per call, budget {allowed:,} (+{growth:.1%})")
    return problems


def _revision() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf_gate", description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="write the measured figures as the budget")
    parser.add_argument("--budget", type=Path, default=BUDGET_FILE)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("perf gate: valgrind (callgrind) is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="perf-gate-") as tmp:
        figures = run(Path(tmp))
    budget = json.loads(args.budget.read_text())["instructions_per_call"] if args.budget.exists() else {}
    for name, figure in figures.items():
        allowed = budget.get(name)
        versus = f" (budget {allowed:,}, {figure / allowed - 1:+.1%})" if allowed else ""
        print(f"{name}: {figure:,} instructions per call{versus}")
    if args.record:
        args.budget.write_text(json.dumps({"instructions_per_call": figures, "counted_calls": COUNTED_CALLS,
                                           "python": sys.version.split()[0], "measured_on": _revision()},
                                          indent=2) + "\n")
        print(f"budget written to {args.budget.relative_to(ROOT) if args.budget.is_relative_to(ROOT) else args.budget}")
        return 0
    problems = over_budget(figures, budget, args.tolerance)
    for problem in problems:
        print(f"OVER BUDGET {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
