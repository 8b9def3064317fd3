"""The benchmark matrix: upstreams, sidecars and helpers started, every target measured in alternation.

Placement as in production: the sidecar pinned to one core; the load generator (this process), the upstreams and
the OTLP receiver on the other. Targets of a group are measured in alternation, several rounds, and only ratios
within the run are compared (absolute numbers move between runs on a shared machine). The command is bench/run.py.
"""


from __future__ import annotations

import os
import platform
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bench import reference, report
from bench.credentials import bench_credentials
from bench.loadgen import LoadResult, LoadSpec, run_load, summarize
from bench.procs import ROOT, Proc, cores, free_port, machine_counters, machine_noise
from bench.profiles import Profile, load_profile, merge
from proxy.config import Config

HERE = Path(__file__).resolve().parent
# Sections that are on by default: every profile starts with them off, so pass-through is what it says.
OFF_BY_BASE = {"audit": {"enabled": False}, "telemetry": {"enabled": False}, "auth": {"mode": "off"},
               "policy": {"engine": "off"}}
UPSTREAM_ARGS = {
    "sdk-json": ["-m", "proxy.runtime.demo", "http", "--stateless-json", "--port"],
    "sdk-stateful": ["-m", "proxy.runtime.demo", "http", "--port"],
    "raw": ["-m", "bench.upstream_raw", "--port"],
    "raw-sse": ["-m", "bench.upstream_raw", "--sse", "--port"],
}


@dataclass
class Settings:
    groups: list[dict[str, Any]]
    clients: list[int]
    seconds: float
    rounds: int
    warmup_seconds: float
    quick: bool


@dataclass
class Tally:
    """One target at one client count, summed over its rounds; each round also kept on its own."""

    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    upstream_cpu_seconds: float = 0.0  # the upstream's own CPU in the same measurements: a yardstick
    latencies_us: list[int] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: LoadResult, cpu: float | None, upstream_cpu: float, machine: dict[str, float]) -> None:
        self.calls += result.calls
        self.errors += result.errors
        self.seconds += result.elapsed
        self.cpu_seconds += cpu or 0.0
        self.upstream_cpu_seconds += upstream_cpu
        self.latencies_us.extend(result.latencies_us)
        self.error_samples.extend(result.error_samples)
        done = result.calls + result.errors
        self.rounds.append({"calls_per_s": round(result.calls / result.elapsed, 1) if result.elapsed else 0.0,
                            "p50_ms": result.summary()["p50_ms"], **machine,
                            **({"cpu_us_per_call": round(cpu / done * 1e6, 1)} if cpu is not None and done else {})})


@dataclass
class Target:
    name: str
    url: str
    profile: Profile | None = None
    proc: Proc | None = None
    tallies: dict[int, Tally] = field(default_factory=dict)  # by client count
    memory: dict[int, dict[str, float]] = field(default_factory=dict)

    def spec(self, era: str, clients: int, seconds: float) -> LoadSpec:
        load = self.profile.load if self.profile else {}
        return LoadSpec(self.url, clients, seconds, era, repeat=bool(load.get("repeat")),
                        headers=dict(load.get("headers") or {}), trace_context=self.name == "direct-traced")


class Run:
    def __init__(self, settings: Settings, work: Path) -> None:
        self.settings = settings
        self.work = work
        self.sidecar_cpus, self.load_cpus = cores()
        self.run_id = uuid.uuid4().hex[:8]
        self.helpers: dict[str, Proc] = {}
        self.results: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []
        self.profiles: dict[str, dict[str, Any]] = {}
        self.credentials = bench_credentials(work)

    def placeholders(self) -> dict[str, str]:
        otlp = self.helpers.get("otlp")
        return {"tmp": str(self.work), "root": str(ROOT), "run_id": self.run_id, "redis_url": "redis://127.0.0.1:6379/0",
                "otlp_url": f"http://127.0.0.1:{otlp.port}" if otlp else "", **self.credentials}

    def start_helpers(self) -> None:
        port = free_port()
        otlp = Proc("otlp-sink", ["-m", "bench.otlp_sink", "--port", str(port)], port, self.load_cpus)
        self.helpers["otlp"] = otlp.start(self.work)
        otlp.wait_ready()

    def stop_helpers(self) -> None:
        for helper in self.helpers.values():
            helper.stop()

    async def measure_group(self, group: dict[str, Any]) -> None:
        port = free_port()
        upstream = Proc(group["upstream"], [*UPSTREAM_ARGS[group["upstream"]], str(port)], port, self.load_cpus)
        upstream.start(self.work)
        targets: list[Target] = []
        try:
            upstream.wait_ready()
            targets = self.start_targets(group, f"http://127.0.0.1:{port}/mcp")
            for clients in self.settings.clients:
                for round_number in range(self.settings.rounds):
                    ordered = targets if round_number % 2 == 0 else targets[::-1]
                    for target in ordered:
                        await self.measure(target, upstream, group["era"], clients)
        finally:
            for target in targets:
                if target.proc is not None:
                    target.proc.stop()
            upstream.stop()
        self.results.extend(self.rows(group, targets))

    def start_targets(self, group: dict[str, Any], upstream_url: str) -> list[Target]:
        targets: list[Target] = []
        for name in group["targets"]:
            if name in ("direct", "direct-traced"):  # the load generator calls the upstream itself
                targets.append(Target(name, upstream_url))
                continue
            maker = self.reference if name in reference.NAMES else self.sidecar
            target = maker(name, group["name"], upstream_url)
            if target is not None:
                targets.append(target)
        for target in targets:
            if target.proc is not None:
                target.proc.wait_ready()
        return targets

    def sidecar(self, name: str, group: str, upstream_url: str) -> Target | None:
        port, admin = free_port(), free_port()
        base = {"server": {"listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{admin}"},
                "upstream": {"url": upstream_url}, "logging": {"level": "warning"},
                **{section: off for section, off in OFF_BY_BASE.items() if section in Config.model_fields}}
        profile = load_profile(name, base, self.placeholders())
        self.profiles[name] = profile.describe()
        if profile.skip_reason:
            self.skipped.append({"group": group, "target": name, "reason": profile.skip_reason})
            return None
        config = self.work / f"sidecar-{group}-{name}.yaml"
        config.write_text(yaml.safe_dump(merge(base, profile.overlay)))
        proc = Proc(f"sidecar-{group}-{name}", ["-m", "proxy", "serve", "--config", str(config)], port,
                    self.sidecar_cpus)
        return Target(name, f"http://127.0.0.1:{port}/mcp", profile, proc.start(self.work))

    def reference(self, name: str, group: str, upstream_url: str) -> Target | None:
        """nginx on the sidecar's core (bench/reference.py): what any proxy placed there costs on this machine."""
        skipped = reference.skip_reason()
        if skipped:
            self.skipped.append({"group": group, "target": name, "reason": skipped})
            return None
        port = free_port()
        config = self.work / f"nginx-{group}-{name}.conf"
        config.write_text(reference.nginx_config(name, port, urlsplit(upstream_url).port or 80, self.work))
        proc = Proc(f"{name}-{group}", reference.nginx_args(config, self.work), port, self.sidecar_cpus,
                    program=reference.nginx_binary() or "nginx")
        load = {"repeat": True} if name == "ref-static" else {}
        return Target(name, f"http://127.0.0.1:{port}/mcp", Profile(name, load=load), proc.start(self.work))

    async def measure(self, target: Target, upstream: Proc, era: str, clients: int) -> None:
        if self.settings.warmup_seconds:
            await run_load(target.spec(era, clients, self.settings.warmup_seconds))
        cpu_before = target.proc.cpu_seconds() if target.proc else 0.0
        upstream_before = upstream.cpu_seconds()
        machine_before = machine_counters()
        result = await run_load(target.spec(era, clients, self.settings.seconds))
        cpu = target.proc.cpu_seconds() - cpu_before if target.proc else None
        upstream_cpu = upstream.cpu_seconds() - upstream_before
        target.tallies.setdefault(clients, Tally()).add(result, cpu, upstream_cpu, machine_noise(machine_before))
        if target.proc is not None:
            target.memory[clients] = target.proc.memory_mb()

    def rows(self, group: dict[str, Any], targets: list[Target]) -> list[dict[str, Any]]:
        rows = []
        for target in targets:
            for clients, tally in target.tallies.items():
                row = {"group": group["name"], "upstream": group["upstream"], "era": group["era"],
                       "target": target.name, "clients": clients,
                       **summarize(tally.calls, tally.errors, tally.seconds, tally.latencies_us, tally.error_samples)}
                if tally.calls + tally.errors:
                    row["upstream_cpu_us_per_call"] = round(tally.upstream_cpu_seconds / (tally.calls + tally.errors)
                                                            * 1e6, 1)
                if target.proc is not None and tally.calls + tally.errors:
                    row["cpu_us_per_call"] = round(tally.cpu_seconds / (tally.calls + tally.errors) * 1e6, 1)
                    # The least disturbed round: other tenants of a shared machine only ever add CPU time.
                    row["cpu_us_per_call_best_round"] = min(item["cpu_us_per_call"] for item in tally.rounds)
                    row.update(target.memory.get(clients, {}))
                row["rounds"] = tally.rounds
                rows.append(row)
        return rows


async def bench(settings: Settings, work: Path) -> dict[str, Any]:
    run = Run(settings, work)
    started = time.time()
    load_average = os.getloadavg()[0]
    run.start_helpers()
    try:
        for group in settings.groups:
            await run.measure_group(group)
    finally:
        run.stop_helpers()
    return {
        "meta": {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                 "wall_seconds": round(time.time() - started, 1), "quick": settings.quick,
                 "seconds_per_measurement": settings.seconds, "rounds": settings.rounds,
                 "clients": settings.clients, "cpus": os.cpu_count(), "python": platform.python_version(),
                 "load_average_at_start": load_average,
                 "pinning": {"sidecar": sorted(run.sidecar_cpus or []), "load": sorted(run.load_cpus or [])}},
        "profiles": run.profiles,
        "skipped": run.skipped,
        "results": run.results,
        "checks": report.checks(run.results),
    }


