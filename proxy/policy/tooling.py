"""`mcp-sidecar policy test|eval|check`: the Rego workflow a team runs in CI, with the sidecar's own engine."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from proxy.policy import narrowing
from proxy.policy.engine import VISIBLE_RULE, decision_from, visible_keys
from proxy.policy.loader import read_source
from proxy.policy.rego import (
    ENTRYPOINTS,
    CompiledPolicy,
    EvaluationError,
    Evaluator,
    PolicyCompileError,
    compile_policy,
)

_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)
INPUT_SUFFIX = "_input"  # test_x_input: the input document test_x is evaluated with
SHOWN_CHARS = 600  # of a failing test's input and decision
EXIT_DENIED, EXIT_BAD_INPUT = 1, 2  # policy eval


@dataclass(frozen=True, slots=True)
class TestResult:
    name: str  # data.<package>.<rule>
    outcome: str  # pass | fail | error
    detail: str = ""
    input: Any = None  # the document the test ran with (its <test>_input rule)
    decision: Any = None  # data.mcp.decision on that input, shown when the test fails


def discover_tests(modules: dict[str, str]) -> list[str]:
    """Entrypoints (`pkg/path/test_x`) of the test_* rules in *_test.rego files, in file order (not *_input)."""
    found: list[str] = []
    for name, source in modules.items():
        package = _PACKAGE.search(source)
        if not name.endswith("_test.rego") or package is None:
            continue
        prefix = package.group(1).replace(".", "/")
        for rule in _TEST_RULE.findall(source):
            if rule.endswith(INPUT_SUFFIX):
                continue
            entrypoint = f"{prefix}/{rule}"
            if entrypoint not in found:
                found.append(entrypoint)
    return found


def run_tests(directory: Path) -> list[TestResult]:
    """Evaluate every test rule; a test passes when its value is true (false or undefined fail).

    Rego's `with input as` crashes rego-cpp 1.5.2, so a test takes its input from the rule `<test>_input` in its
    package (evaluated first, with an empty input); without one it runs with an empty input.
    """
    source = read_source(directory, include_tests=True)
    tests = discover_tests(source.modules)
    inputs = tuple(test + INPUT_SUFFIX for test in tests)
    compiled = compile_policy(source.modules, source.data, entrypoints=tuple(tests) + inputs + ENTRYPOINTS)
    evaluator = Evaluator()
    return [_run_one(evaluator, compiled, entrypoint) for entrypoint in tests]


def _run_one(evaluator: Evaluator, compiled: CompiledPolicy, entrypoint: str) -> TestResult:
    name = "data." + entrypoint.replace("/", ".")
    document: Any = None
    try:
        document = evaluator.evaluate(compiled, entrypoint + INPUT_SUFFIX, {})
        document = {} if document is None else document
        value = evaluator.evaluate(compiled, entrypoint, document)
        mismatch = narrowing_problem(evaluator, compiled, document)
    except EvaluationError as exc:
        return TestResult(name, "error", str(exc), document)
    detail = "" if value is True else ("undefined" if value is None else f"value {orjson.dumps(value).decode()}")
    if value is True and mismatch is not None:
        value, detail = False, mismatch
    if value is True:
        return TestResult(name, "pass")
    return TestResult(name, "fail", detail, document, _decision_or_error(evaluator, compiled, document))


def _decision_or_error(evaluator: Evaluator, compiled: CompiledPolicy, document: Any) -> Any:
    try:
        return evaluator.evaluate(compiled, "mcp/decision", document)
    except EvaluationError as exc:
        return f"error: {exc}"


def _shown(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"... ({len(text)} characters)"


def print_result(result: TestResult, out: TextIO) -> None:
    """One line per test; a failure also shows the input it ran with and the decision on it."""
    suffix = f" ({result.detail})" if result.detail else ""
    print(f"{result.outcome.upper()}: {result.name}{suffix}", file=out)
    if result.outcome == "pass":
        return
    print(f"    input ({result.name}{INPUT_SUFFIX}): {_shown(result.input)}", file=out)
    if result.outcome == "fail":
        print(f"    data.mcp.decision: {_shown(result.decision)}", file=out)


def narrowing_problem(evaluator: Evaluator, compiled: CompiledPolicy, document: Any) -> str | None:
    """For a tools/call test input: why data.mcp.decision changes when it sees only the arguments that
    data.mcp.argument_names names (it reads one it does not name), or None. A test runs with all of them."""
    if not compiled.narrows_arguments or narrowing.call_tool(document) is None:
        return None
    whole = evaluator.evaluate(compiled, "mcp/decision", document)
    if evaluator.evaluate_narrowed(compiled, "mcp/decision", document) == whole:
        return None
    return (f"data.mcp.decision differs when it sees only the arguments data.mcp.{narrowing.RULE} names: "
            "it reads an argument that entrypoint leaves out")


def test_command(directory: Path, verbose: bool, out: TextIO = sys.stdout) -> int:
    try:
        results = run_tests(directory)
    except PolicyCompileError as exc:
        return _report_problems(exc.problems, out)
    for result in results:
        if verbose or result.outcome != "pass":
            print_result(result, out)
    passed = sum(result.outcome == "pass" for result in results)
    print("-" * 40, file=out)
    if not results:
        print(f"no test_* rules found in {directory}/**/*_test.rego", file=out)
        return 1
    print(f"PASS: {passed}/{len(results)}" + ("" if passed == len(results) else
                                                f"  FAIL: {len(results) - passed}/{len(results)}"), file=out)
    return 0 if passed == len(results) else 1


def check_command(directory: Path, out: TextIO = sys.stdout) -> int:
    try:
        source = read_source(directory, include_tests=True)
        compile_policy(source.modules, source.data)
    except PolicyCompileError as exc:
        return _report_problems(exc.problems, out)
    print(f"ok: {len(source.modules)} modules in {directory} compile (revision {source.revision})", file=out)
    return 0


def eval_command(directory: Path, input_path: Path, rule: str, out: TextIO = sys.stdout) -> int:
    """Print what the sidecar would decide for an input document (JSON or YAML), validated as the stage does
    (a tools/call's arguments cut down to what argument_names names); or the names themselves."""
    try:
        document = _read_input(input_path)
        source = read_source(directory)
        compiled = compile_policy(source.modules, source.data)
        result = _evaluated(compiled, rule, document, source.revision)
    except PolicyCompileError as exc:
        _report_problems(exc.problems, out)
        return EXIT_BAD_INPUT
    except (OSError, ValueError, EvaluationError) as exc:
        print(f"error: {exc}", file=out)
        return EXIT_BAD_INPUT
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode(), file=out)
    return EXIT_DENIED if result.get("allow") is False else 0


def _evaluated(compiled: CompiledPolicy, rule: str, document: Any, revision: str) -> dict[str, Any]:
    evaluator = Evaluator()
    if rule == narrowing.RULE:  # as the sidecar asks: over the input without the arguments; null: all of them
        bare = narrowing.without_arguments(document)
        names = narrowing.argument_names(evaluator.evaluate(compiled, narrowing.ENTRYPOINT,
                                                            document if bare is None else bare))
        return {"argument_names": None if names is None else list(names), "revision": revision}
    value = evaluator.evaluate_narrowed(compiled, f"mcp/{rule}", document)
    if rule == VISIBLE_RULE:
        return {"visible": sorted(visible_keys(value)), "revision": revision}
    decision = decision_from(value, revision)
    return {"allow": decision.allow, "reasons": list(decision.reasons), "obligations": decision.obligations,
            "revision": decision.revision}


def _read_input(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        return orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid JSON/YAML: {exc}") from None


def _report_problems(problems: list[str], out: TextIO) -> int:
    for problem in problems:
        print(problem, file=out)
    return 1


