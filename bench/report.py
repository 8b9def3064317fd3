"""Turning a run into its verdicts (the issue's targets, as ratios within the run), JSON, Markdown and a chart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

Row = dict[str, Any]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def find(results: list[Row], group: str, target: str, clients: int) -> Row | None:
    for row in results:
        if (row["group"], row["target"], row["clients"]) == (group, target, clients):
            return row
    return None


def _ratio(results: list[Row], group: str, target: str, base: str, clients: int, key: str) -> float | None:
    """target/base of `key` (calls_per_s), or base/target of a latency (how many times faster)."""
    row, base_row = find(results, group, target, clients), find(results, group, base, clients)
    if not row or not base_row or not row.get(key) or not base_row.get(key):
        return None
    value = row[key] / base_row[key] if key == "calls_per_s" else base_row[key] / row[key]
    return round(value, 3)


def _round_spread(results: list[Row], group: str, target: str, base: str, clients: int, key: str,
                  added: bool = False) -> str | None:
    """Lowest and highest of the same comparison made round by round (round k of each target falls in the same
    alternation round): how far the machine's weather moved the figure within this run."""
    row, base_row = find(results, group, target, clients), find(results, group, base, clients)
    if not row or not base_row:
        return None
    values = []
    for mine, theirs in zip(row.get("rounds", []), base_row.get("rounds", []), strict=False):
        if not mine.get(key) or not theirs.get(key):
            continue
        if added:
            values.append(mine[key] - theirs[key])
        else:
            values.append(mine[key] / theirs[key] if key == "calls_per_s" else theirs[key] / mine[key])
    return f"{min(values):.2f} .. {max(values):.2f}" if len(values) > 1 else None


def _added_p50(results: list[Row], group: str, target: str) -> float | None:
    row, base = find(results, group, target, 1), find(results, group, "direct", 1)
    if not row or not base or row["p50_ms"] is None or base["p50_ms"] is None:
        return None
    return round(row["p50_ms"] - base["p50_ms"], 3)


def _field(results: list[Row], group: str, target: str, clients: int, key: str) -> float | None:
    row = find(results, group, target, clients)
    return row.get(key) if row else None


def checks(results: list[Row]) -> list[Row]:
    """The issue's targets on this run's figures; `ok` is None where the run did not measure it."""
    specs: list[tuple[str, float | None, str, bool, str | None]] = []
    for target in ("full", "passthrough"):
        specs.append((f"{target} / direct throughput, SDK upstream (modern), 32 clients",
                      _ratio(results, "sdk-modern", target, "direct", 32, "calls_per_s"), ">= 0.95", True,
                      _round_spread(results, "sdk-modern", target, "direct", 32, "calls_per_s")))
        specs.append((f"{target}: added p50 at 1 client, SDK upstream (modern), ms",
                      _added_p50(results, "sdk-modern", target), "< 1.0", False,
                      _round_spread(results, "sdk-modern", target, "direct", 1, "p50_ms", added=True)))
    specs.append(("full / direct throughput, SDK upstream (legacy, SSE), 32 clients",
                  _ratio(results, "sdk-legacy", "full", "direct", 32, "calls_per_s"), ">= 0.95", True,
                  _round_spread(results, "sdk-legacy", "full", "direct", 32, "calls_per_s")))
    for target, limit in (("passthrough", 200.0), ("full", 500.0), ("full-sampled", 500.0)):
        for clients in (1, 32):
            specs.append((f"sidecar CPU per call, {target}, raw upstream, {clients} client(s), us (best round)",
                          _field(results, "raw-modern", target, clients, "cpu_us_per_call_best_round"),
                          f"< {limit:g}", False, None))
    specs.append(("cache hit vs SDK upstream, p50 at 1 client (times faster)",
                  _ratio(results, "sdk-modern", "cache-hit", "direct", 1, "p50_ms"), ">= 3", True,
                  _round_spread(results, "sdk-modern", "cache-hit", "direct", 1, "p50_ms")))
    specs.append(("cache hit vs SDK upstream, throughput at 32 clients (times)",
                  _ratio(results, "sdk-modern", "cache-hit", "direct", 32, "calls_per_s"), ">= 3", True,
                  _round_spread(results, "sdk-modern", "cache-hit", "direct", 32, "calls_per_s")))
    peaks = [row["peak_rss_mb"] for row in results
             if row.get("peak_rss_mb") and row["clients"] == 32 and not row["target"].startswith("ref-")]
    specs.append(("highest sidecar peak RSS at 32 clients, MB", max(peaks) if peaks else None, "< 120", False, None))
    return [_verdict(*spec) for spec in specs]


def yardstick(results: list[Row]) -> list[Row]:
    """The sidecar's CPU per call as a multiple of the minimal upstream's own, same run and client count: the CPU
    targets are microseconds on one machine, and this says how a run on a faster or slower one compares."""
    rows = []
    for clients in (1, 32):
        base = _field(results, "raw-modern", "direct", clients, "upstream_cpu_us_per_call")
        for target in ("passthrough", "full", "full-sampled"):
            cpu = _field(results, "raw-modern", target, clients, "cpu_us_per_call_best_round")
            if base and cpu:
                rows.append({"target": target, "clients": clients, "raw_upstream_cpu_us": base,
                             "sidecar_cpu_us": cpu, "times_raw_upstream": round(cpu / base, 2)})
    return rows


def _verdict(name: str, value: float | None, goal: str, higher_is_better: bool, spread: str | None) -> Row:
    bound = float(goal.split()[-1])
    ok = None if value is None else (value >= bound if higher_is_better else value < bound)
    return {"name": name, "measured": value, "target": goal, "ok": ok, "rounds": spread}


def write(results: dict[str, Any], out: Path, readme: Path | None) -> None:
    (out / "latest.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    chart = chart_png(results["results"], out / "latency.png")
    if readme is not None:
        section = markdown(results, chart.relative_to(readme.parent) if chart else None)
        text = readme.read_text() if readme.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
        pattern = re.compile(re.escape(START) + ".*" + re.escape(END), re.S)
        readme.write_text(pattern.sub(lambda _: f"{START}\n{section}\n{END}", text))


def write_soak(samples: dict[str, Any], out: Path) -> None:
    (out / "soak.json").write_bytes(orjson.dumps(samples, option=orjson.OPT_INDENT_2))


def markdown(results: dict[str, Any], chart: Path | None) -> str:
    meta = results["meta"]
    lines = [f"Run of {meta['started']} ({meta['cpus']} CPUs, sidecar on CPU {meta['pinning']['sidecar']}, load "
             f"generator and upstream on CPU {meta['pinning']['load']}; {meta['rounds']} alternating rounds of "
             f"{meta['seconds_per_measurement']:g} s per target and client count; load average "
             f"{meta['load_average_at_start']:.1f} at the start: the machine is shared, see the last two columns, "
             "the highest load average and hypervisor steal seen in any round of the row).", "",
             "| group | target | clients | calls/s | vs direct | p50 ms | p90 ms | p99 ms | errors | "
             "sidecar CPU us/call (best round) | upstream CPU us/call | peak RSS MB | load avg | steal % |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = results["results"]
    for row in rows:
        versus = _ratio(rows, row["group"], row["target"], "direct", row["clients"], "calls_per_s")
        lines.append(f"| {row['group']} | {row['target']} | {row['clients']} | {row['calls_per_s']:,.0f} | "
                     f"{'' if versus is None else f'{versus:.2f}x'} | {row['p50_ms']} | {row['p90_ms']} | "
                     f"{row['p99_ms']} | {row['errors']} | {_cpu(row)} | {row.get('upstream_cpu_us_per_call', '')} | "
                     f"{row.get('peak_rss_mb', '')} | "
                     f"{_worst(row, 'load_average')} | {_worst(row, 'steal_pct')} |")
    traced = [(group, _ratio(rows, group, "full", "direct-traced", 32, "calls_per_s"))
              for group in ("sdk-modern", "sdk-legacy")]
    if any(value is not None for _, value in traced):
        lines += ["", "Against a client that sends trace context itself (`direct-traced`; a decomposition, not a "
                  "target): " + "; ".join(f"full / direct-traced at 32 clients, {group}: {value:.2f}"
                                          for group, value in traced if value is not None) + "."]
    lines += _reference_lines(rows)
    lines += ["", "| target (issue 9) | measured | round by round, lowest .. highest | goal | met |",
              "|---|---:|---:|---|---|"]
    for check in results["checks"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[check["ok"]]
        lines.append(f"| {check['name']} | {check['measured']} | {check.get('rounds') or ''} | {check['target']} | "
                     f"{met} |")
    scaled = yardstick(rows)
    if scaled:
        lines += ["", "The CPU targets in units of the machine: the sidecar's CPU per call (best round) over the "
                  "minimal raw upstream's own CPU per call (called directly), same run and client count (a yardstick, "
                  "not a target):", "", "| target | clients | sidecar us | raw upstream us | ratio |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {item['target']} | {item['clients']} | {item['sidecar_cpu_us']} | "
                  f"{item['raw_upstream_cpu_us']} | {item['times_raw_upstream']}x |" for item in scaled]
    lines += ["", "Sidecar profiles in this run (parts not in this build are listed, never faked):", ""]
    for name, parts in results["profiles"].items():
        lines.append(f"- `{name}`: on: {', '.join(parts['on']) or 'nothing (pass-through)'}"
                     + (f"; missing: {'; '.join(parts['missing'])}" if parts["missing"] else "")
                     + (f"; invalid: {parts['invalid']}" if parts["invalid"] else "")
                     + (f"; skipped: {parts['skipped']}" if parts["skipped"] else ""))
    if chart is not None:
        lines += ["", f"![latency percentiles]({chart})"]
    return "\n".join(lines)


def references(results: list[Row]) -> list[tuple[str, float | None]]:
    """The sidecar against nginx placed where it runs (bench/reference.py), same run: the share of a gap to
    `direct` that any proxy on that core pays here, and the floor of a cache hit."""
    found: list[tuple[str, float | None]] = []
    for group in ("sdk-modern", "sdk-legacy"):
        found.append((f"ref-nginx / direct throughput at 32 clients, {group}",
                      _ratio(results, group, "ref-nginx", "direct", 32, "calls_per_s")))
        for target in ("passthrough", "full"):
            found.append((f"{target} / ref-nginx throughput at 32 clients, {group}",
                          _ratio(results, group, target, "ref-nginx", 32, "calls_per_s")))
    found.append(("ref-nginx: added p50 at 1 client, sdk-modern, ms", _added_p50(results, "sdk-modern", "ref-nginx")))
    found.append(("ref-static vs SDK upstream, p50 at 1 client (times faster; the most a cache hit can show)",
                  _ratio(results, "sdk-modern", "ref-static", "direct", 1, "p50_ms")))
    return [(name, value) for name, value in found if value is not None]


def _reference_lines(rows: list[Row]) -> list[str]:
    found = references(rows)
    if not found:
        return []
    return ["", "Against nginx on the sidecar's core (`ref-nginx` proxies, `ref-static` answers a canned result; a "
            "yardstick, not a target; its CPU and RSS are nginx's own):", "", "| comparison | measured |",
            "|---|---:|", *(f"| {name} | {value} |" for name, value in found)]


def _cpu(row: Row) -> str:
    if "cpu_us_per_call" not in row:
        return ""
    return f"{row['cpu_us_per_call']} ({row['cpu_us_per_call_best_round']})"


def _worst(row: Row, key: str) -> float | str:
    values = [item[key] for item in row.get("rounds", []) if key in item]
    return max(values) if values else ""


def chart_png(rows: list[Row], path: Path) -> Path | None:
    """p50/p90/p99 per target, one panel per group and client count; None without matplotlib (bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = sorted({(row["group"], row["clients"]) for row in rows}, key=lambda key: (key[1], key[0]))
    if not panels:
        return None
    columns = len({group for group, _ in panels})
    lines = len({clients for _, clients in panels})
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.4 * lines), squeeze=False)
    for index, (group, clients) in enumerate(panels):
        axis = axes[index // columns][index % columns]
        chosen = [row for row in rows if row["group"] == group and row["clients"] == clients]
        for offset, key in enumerate(("p50_ms", "p90_ms", "p99_ms")):
            xs = [position + (offset - 1) * 0.27 for position in range(len(chosen))]
            axis.bar(xs, [row[key] or 0 for row in chosen], width=0.27, label=key.split("_")[0])
        axis.set_xticks(range(len(chosen)), [row["target"] for row in chosen], rotation=20, fontsize=8)
        axis.set_title(f"{group}, {clients} client(s)", fontsize=9)
        axis.set_ylabel("ms", fontsize=8)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
