"""Policy evaluation time per decision for the shipped policies (goal: median under 150 us on a 2-core machine).

    python bench/policy_bench.py [--iterations 3000] [--dir policies]

Each figure covers one decision as the policy stage makes it: projecting the input document onto the paths the
policy reads, handing that to rego-cpp (shown apart in the `input` column), evaluating data.mcp.decision (or
data.mcp.visible for a list) from the compiled bundle, and validating the result. `median`, `p90` and `p99` are
with the result memo off (every decision evaluated); `memo hit` is the median when the same projected input was
decided before under the same bundle. Building the input document from a call context is printed separately.
A second table queries as the stage does (memo on, a tools/call's arguments cut down to data.mcp.argument_names
first) with new arguments on every call, once as shipped and once with argument_names ignored (as before it
existed). Runs on one thread, as on the event loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.catalog import ToolInfo
from proxy.context import Principal
from proxy.policy.engine import decision_from, policy_input, visible_keys
from proxy.policy.listing import list_item
from proxy.policy.loader import load
from proxy.policy.memo import ResultMemo
from proxy.policy.projection import project
from proxy.policy.rego import Evaluator
from tests.kit import make_ctx

READ_ONLY = {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False}


def principal(*roles: str, plan: str = "pro") -> Principal:
    claims = {"plan": plan, "email": "someone@example.com", "aud": "https://sidecar.example/mcp", "exp": 1795834800}
    return Principal(subject="someone", issuer="https://idp.example", claims=claims, roles=frozenset(roles),
                     scopes=frozenset({"mcp:tools"}))


def scenarios() -> dict[str, tuple[str, dict]]:
    tool = ToolInfo.from_definition({"name": "add", "inputSchema": {"type": "object"}, "annotations": READ_ONLY})
    query = ToolInfo.from_definition({"name": "run_query", "inputSchema": {"type": "object"}, "annotations": READ_ONLY})
    delete = ToolInfo.from_definition({"name": "delete_file", "inputSchema": {"type": "object"},
                                       "annotations": {"readOnlyHint": False, "destructiveHint": True}})
    listing = [list_item("tools", {"name": f"tool_{n}", "inputSchema": {"type": "object"},
                                   "annotations": READ_ONLY if n % 3 else {}}, "name") for n in range(20)]
    return {
        "tools/call allowed (reader, add)": ("decision", policy_input(
            make_ctx("tools/call", target="add", arguments={"a": 1, "b": 2}, principal=principal("reader")),
            "upstream", tool)),
        "tools/call SQL check (analyst)": ("decision", policy_input(
            make_ctx("tools/call", target="run_query", arguments={"sql": "SELECT id FROM orders WHERE total > 9"},
                     principal=principal("analyst")), "upstream", query)),
        "tools/call destructive denied": ("decision", policy_input(
            make_ctx("tools/call", target="delete_file", arguments={"path": "/tmp/scratch/a"},
                     principal=principal("developer")), "upstream", delete)),
        "tools/list decision": ("decision", policy_input(make_ctx("tools/list", principal=principal("reader")),
                                                         "upstream")),
        "tools/list visible, 20 tools": ("visible", policy_input(
            make_ctx("tools/list", principal=principal("developer")), "upstream", listing=("tools", listing))),
    }


def measure(evaluator: Evaluator, loaded, compiled, rule: str, document: dict, iterations: int) -> list[float]:
    timings = []
    for _ in range(iterations):
        started = time.perf_counter()
        value = evaluator.evaluate(compiled, f"mcp/{rule}", document)
        decision_from(value, loaded.revision) if rule == "decision" else visible_keys(value)
        timings.append((time.perf_counter() - started) * 1e6)
    return timings


def fresh_arguments() -> dict[str, tuple[str, ToolInfo, Principal, Callable[[int], dict]]]:
    """Calls whose arguments differ every time: (tool, catalog entry, caller, the n-th call's arguments)."""
    add = ToolInfo.from_definition({"name": "add", "inputSchema": {"type": "object"}, "annotations": READ_ONLY})
    query = ToolInfo.from_definition({"name": "run_query", "inputSchema": {"type": "object"}, "annotations": READ_ONLY})
    return {
        "add: no argument rule (reader)": ("add", add, principal("reader"), lambda n: {"a": n, "b": 2 * n}),
        "run_query: sql rule, new sql (analyst)": ("run_query", query, principal("analyst"),
                                                   lambda n: {"sql": f"SELECT id FROM orders WHERE total > {n}"}),
        "run_query: same sql, new limit": ("run_query", query, principal("analyst"),
                                           lambda n: {"sql": "SELECT id FROM orders", "limit": n}),
    }


def measure_fresh(evaluator: Evaluator, loaded, variants: list, tool: str, info: ToolInfo, caller: Principal,
                  arguments: Callable[[int], dict], iterations: int) -> list[list[float]]:
    """Per decision as the stage queries (memo on, arguments narrowed), each call with new arguments; the variants
    (compiled policies) take turns call by call, so they share the machine's weather."""
    documents = [policy_input(make_ctx("tools/call", target=tool, arguments=arguments(n), principal=caller),
                              "upstream", info) for n in range(iterations)]
    timings: list[list[float]] = [[] for _ in variants]
    for document in documents:
        for compiled, spent in zip(variants, timings, strict=True):
            started = time.perf_counter()
            decision_from(evaluator.evaluate_narrowed(compiled, "mcp/decision", document), loaded.revision)
            spent.append((time.perf_counter() - started) * 1e6)
    return timings


def print_fresh(evaluator: Evaluator, loaded, iterations: int) -> None:
    print(f"\nnew arguments on every call, as the stage queries (memo on; {iterations} calls, medians in us)")
    print(f"{'call':40} {'argument_names':>15} {'ignored (before)':>17}")
    for name, (tool, info, caller, arguments) in fresh_arguments().items():
        variants = [dataclasses.replace(loaded.compiled, memo=ResultMemo(), narrows_arguments=narrows)
                    for narrows in (True, False)]
        timings = measure_fresh(evaluator, loaded, variants, tool, info, caller, arguments, iterations)
        medians = [statistics.median(spent) for spent in timings]
        print(f"{name:40} {medians[0]:15.1f} {medians[1]:17.1f}")


def input_term_cost(evaluator: Evaluator, paths, document: dict, iterations: int) -> float:
    """Median time of projecting the input document and handing it to rego-cpp alone (one C call per value)."""
    from proxy.policy import rego

    interpreter = evaluator._interpreter()
    timings = []
    for _ in range(iterations):
        started = time.perf_counter()
        term = rego.native.rego_new_input()
        rego._push(term, project(document, paths))
        rego.native.rego.regoSetInput(interpreter._impl, term)
        rego.native.rego_free_input(term)
        timings.append((time.perf_counter() - started) * 1e6)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--dir", default=str(Path(__file__).resolve().parent.parent / "policies"))
    args = parser.parse_args()
    loaded = load(Path(args.dir), crash_guard=False)
    evaluator = Evaluator()
    print(f"policy {args.dir} revision {loaded.revision}; {args.iterations} decisions per row (microseconds)")
    print(f"input paths read: {loaded.compiled.use.paths}; results remembered: {loaded.compiled.use.cacheable}")
    print(f"{'scenario':36} {'median':>8} {'p90':>8} {'p99':>8} {'input':>8} {'memo hit':>8}")
    unmemoized = dataclasses.replace(loaded.compiled, memo=None)
    medians = []
    for name, (rule, document) in scenarios().items():
        measure(evaluator, loaded, unmemoized, rule, document, 200)  # warm up
        timings = sorted(measure(evaluator, loaded, unmemoized, rule, document, args.iterations))
        median = statistics.median(timings)
        medians.append(median)
        p90, p99 = timings[int(len(timings) * 0.9)], timings[int(len(timings) * 0.99)]
        term = input_term_cost(evaluator, loaded.compiled.use.paths, document, args.iterations)
        hit = "-"
        if loaded.compiled.memo is not None:
            remembered = measure(evaluator, loaded, loaded.compiled, rule, document, args.iterations)
            hit = f"{statistics.median(remembered):.1f}"
        print(f"{name:36} {median:8.1f} {p90:8.1f} {p99:8.1f} {term:8.1f} {hit:>8}")
    ctx = make_ctx("tools/call", target="add", arguments={"a": 1, "b": 2}, principal=principal("reader"))
    started = time.perf_counter()
    for _ in range(args.iterations):
        policy_input(ctx, "upstream")
    build = (time.perf_counter() - started) / args.iterations * 1e6
    print(f"building the input document from a call context: {build:.1f} us (not included above)")
    print("input: of the median, handing the input document to rego-cpp")
    print(f"median of the tools/call decisions: {statistics.median(medians[:3]):.1f} us (goal < 150 us)")
    if loaded.compiled.memo is not None:
        print_fresh(evaluator, loaded, args.iterations)


if __name__ == "__main__":
    main()
