"""The benchmark runner: starts upstreams, sidecars and helpers itself, measures every target in one run.

    python -m bench.run            # the full matrix of bench/scenarios.yaml (a few minutes)
    python -m bench.run --quick    # a few seconds: raw upstream, direct and pass-through
    python -m bench.run --soak 300 # one full-pipeline sidecar at 32 clients for 300 s, RSS sampled

How the matrix is measured: bench/matrix.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

import yaml

from bench import report
from bench.matrix import HERE, Settings, bench
from bench.procs import cores
from bench.soak import soak


def settings_from(args: argparse.Namespace) -> Settings:
    scenarios = yaml.safe_load(Path(args.scenarios).read_text())
    source = scenarios["quick"] if args.quick else scenarios
    groups = scenarios["groups"]
    if args.quick:
        chosen = source["groups"]
        groups = [{**group, "targets": chosen[group["name"]]} for group in groups if group["name"] in chosen]
    if args.groups:
        groups = [group for group in groups if group["name"] in args.groups.split(",")]
    rounds = args.rounds or source["rounds"]
    if rounds > 1 and rounds % 2:
        raise SystemExit(f"--rounds {rounds}: use an even number, so that every forward round has its backward one "
                         "and a drift of the machine over the run weighs on every target alike")
    return Settings(groups=groups, clients=[int(c) for c in (args.clients or source["clients"])],
                    seconds=args.seconds or source["seconds"], rounds=rounds,
                    warmup_seconds=source["warmup_seconds"], quick=args.quick)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--quick", action="store_true", help="a few seconds in total (CI smoke run)")
    parser.add_argument("--scenarios", default=str(HERE / "scenarios.yaml"))
    parser.add_argument("--groups", help="comma-separated group names to run (default: all)")
    parser.add_argument("--clients", nargs="+", help="client counts (default from scenarios)")
    parser.add_argument("--seconds", type=float, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, help="alternation rounds per group (1, or an even number)")
    parser.add_argument("--out", default=str(HERE / "results"), help="directory for latest.json and the chart")
    parser.add_argument("--readme", default=None, help="Markdown file whose results section to rewrite "
                        "(default: bench/README.md, except with --quick); 'none' to skip")
    parser.add_argument("--soak", type=float, metavar="SECONDS", help="run the soak test instead")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _pin_self()
    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as work:
        if args.soak:
            report.write_soak(asyncio.run(soak(args.soak, Path(work))), out)
            return
        results = asyncio.run(bench(settings_from(args), Path(work)))
    readme = args.readme or ("none" if args.quick else str(HERE / "README.md"))
    report.write(results, out, None if readme == "none" else Path(readme))


def _pin_self() -> None:
    """This process is the load generator: it belongs on the load core, with the upstreams."""
    _, load_cpus = cores()
    if load_cpus:
        os.sched_setaffinity(0, load_cpus)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


if __name__ == "__main__":
    main()
