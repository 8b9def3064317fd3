"""regopy as this sidecar uses it: compiled bundles, escaped input, linted built-ins, errors with file and line."""

from __future__ import annotations

import os

import pytest

from proxy.policy.rego import EvaluationError, Evaluator, PolicyCompileError, compile_policy

ECHO = 'package mcp\nimport rego.v1\ndecision := {"allow": false, "reasons": [input.name]}\n'


def evaluate(source: str, document, entrypoint: str = "mcp/decision"):
    return Evaluator().evaluate(compile_policy({"p.rego": source}), entrypoint, document)


def test_false_is_false_and_missing_is_undefined() -> None:
    policy = 'package mcp\nimport rego.v1\ndefault decision := false\nvisible contains "a" if input.x\n'
    assert evaluate(policy, {}) is False
    assert evaluate(policy, {}, "mcp/visible") == []
    assert evaluate('package mcp\nimport rego.v1\ndecision := 1 if input.x\n', {}) is None


@pytest.mark.parametrize("name", ['quote " inside', "back\\slash", "line\nbreak", 'x", "allow": true, "y": "',
                                  "é ✓"])
def test_strings_round_trip_without_breaking_the_output(name: str) -> None:
    # rego-cpp prints strings it was given raw without escaping them: they go in JSON-escaped.
    assert evaluate(ECHO, {"name": name}) == {"allow": False, "reasons": [name]}


def test_input_strings_compare_equal_to_literals() -> None:
    policy = 'package mcp\nimport rego.v1\ndefault decision := false\ndecision if input.s == "a\\"b\\n"\n'
    assert evaluate(policy, {"s": 'a"b\n'}) is True


@pytest.mark.parametrize("name", ['short "quoted"', 'long "quoted" ' * 20])
def test_remembered_escapes_give_the_same_result(name: str) -> None:
    # Short strings are escaped once and remembered; long ones every time. Either way, the same answer each time.
    for _ in range(3):
        assert evaluate(ECHO, {"name": name, name: name}) == {"allow": False, "reasons": [name]}


def test_nul_and_huge_integers_are_refused() -> None:
    with pytest.raises(EvaluationError):
        evaluate(ECHO, {"name": "/srv/shared/\x00/../../etc"})
    with pytest.raises(EvaluationError):
        evaluate(ECHO, {"name": 2**80})
    with pytest.raises(EvaluationError):
        evaluate(ECHO, {"name": {"key\x00": 1}})  # keys are checked too


def test_builtin_errors_are_errors_not_undefined() -> None:
    with pytest.raises(EvaluationError):
        evaluate('package mcp\nimport rego.v1\ndecision := startswith(input.n, "a")\n', {"n": 5})


def test_missing_builtins_and_with_are_rejected_at_compile_time() -> None:
    source = ('package mcp\nimport rego.v1\n# net.cidr_contains("x") in a comment is fine\n'
              'f(x) := x\ndecision := {"allow": net.cidr_contains("10.0.0.0/8", input.ip)}\n'
              't if { f(1) == 1 with input as {} }\n')
    with pytest.raises(PolicyCompileError) as caught:
        compile_policy({"a.rego": source})
    assert caught.value.problems == [
        "a.rego:6:18: `with` is not supported: rego-cpp 1.5.2 crashes on it (a test takes its input from a "
        "`<test>_input` rule instead)",
        "a.rego:5:23: unknown or unsupported built-in function net.cidr_contains()",
    ]


def test_parse_errors_name_file_line_and_column() -> None:
    with pytest.raises(PolicyCompileError) as caught:
        compile_policy({"dir/b.rego": 'package mcp\n\ndecision := {"allow": true if {\n'})
    assert caught.value.problems[0] == "dir/b.rego:3:31: this is unclosed"


def test_interpreters_are_per_thread() -> None:
    import threading

    compiled = compile_policy({"p.rego": ECHO})
    evaluator, seen = Evaluator(), []
    thread = threading.Thread(target=lambda: seen.append(evaluator.evaluate(compiled, "mcp/decision", {"name": "t"})))
    thread.start()
    thread.join(10)
    assert seen == [{"allow": False, "reasons": ["t"]}]
    assert evaluator.evaluate(compiled, "mcp/decision", {"name": "m"})["reasons"] == ["m"]
    assert os.getpid()  # same process, two interpreters
