"""`mcp-sidecar policy test|eval|check` as a team runs them in CI (subprocesses, real files)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from tests.kit import ROOT, child_env


def sidecar(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "policy", *args], env=child_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_shipped_policies_pass_their_own_tests() -> None:
    result = sidecar("test", "policies")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: " in result.stdout and "FAIL" not in result.stdout


def test_a_failing_test_fails_the_run(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "policies", tmp_path / "p")
    (tmp_path / "p" / "wrong_test.rego").write_text(
        "package mcp_test.wrong\nimport rego.v1\n\n"
        'test_reader_may_delete_input := data.mcp_test.fixtures.call("delete_file", {"path": "/tmp/scratch/x"}, '
        'data.mcp_test.fixtures.destructive, ["reader"])\n\n'
        "test_reader_may_delete if data.mcp.decision.allow\n")
    result = sidecar("test", str(tmp_path / "p"), "-v")
    assert result.returncode == 1
    assert "FAIL: data.mcp_test.wrong.test_reader_may_delete (undefined)" in result.stdout
    # The failure names the input it ran with and the decision on it, not only the rule.
    shown = result.stdout.split("FAIL: data.mcp_test.wrong.test_reader_may_delete", 1)[1].splitlines()
    assert shown[1].startswith("    input (data.mcp_test.wrong.test_reader_may_delete_input): {")
    assert '"name":"delete_file"' in shown[1] and '"roles":["reader"]' in shown[1]
    assert shown[2].startswith('    data.mcp.decision: {"allow":false') and "needs an elevated role" in shown[2]
    assert "PASS: data.mcp_test.roles.test_reader_may_call_add" in result.stdout


def test_the_shipped_tests_run_on_their_fixture_data_not_the_editable_data(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "policies", tmp_path / "p")
    (tmp_path / "p" / "data.json").write_text('{"settings": {"tool_roles": {}, "methods": []}}')
    result = sidecar("test", str(tmp_path / "p"))
    assert result.returncode == 0, result.stdout
    (tmp_path / "p" / "data_test.json").unlink()  # now they read the edited data, and say why they fail
    failing = sidecar("test", str(tmp_path / "p"))
    assert failing.returncode == 1
    assert "FAIL: data.mcp_test.roles.test_reader_may_call_add" in failing.stdout
    assert "no role of yours grants the tool add" in failing.stdout


def test_eval_of_a_bad_input_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    assert sidecar("eval", "--input", str(tmp_path / "bad.json")).returncode == 2


def test_check_reports_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "ok.rego").write_text("package mcp\nimport rego.v1\ndecision := {\"allow\": true}\n")
    assert sidecar("check", str(tmp_path)).returncode == 0
    (tmp_path / "broken.rego").write_text("package mcp.rules.x\nimport rego.v1\n\ndeny contains \"x\" if {\n")
    (tmp_path / "lacking.rego").write_text("package mcp.rules.y\nimport rego.v1\n\ndeny contains \"y\" if {\n"
                                           "  net.cidr_contains(\"10.0.0.0/8\", input.request.client_address)\n}\n")
    result = sidecar("check", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'broken.rego'}:4:" in result.stdout
    assert (f"{tmp_path / 'lacking.rego'}:5:3: unknown or unsupported built-in function net.cidr_contains()"
            in result.stdout)


def test_eval_prints_the_decision(tmp_path: Path) -> None:
    result = sidecar("eval", "--input", "policies/examples/call-run-query.json")
    assert result.returncode == 0, result.stderr
    decision = orjson.loads(result.stdout)
    assert decision["allow"] is True and decision["obligations"]["rate_limit"] == {"buckets": ["plan-pro"], "cost": 2}
    document = orjson.loads((ROOT / "policies/examples/call-run-query.json").read_bytes())
    document["mcp"]["tool"]["arguments"]["sql"] = "DELETE FROM orders"
    (tmp_path / "input.json").write_bytes(orjson.dumps(document))
    denied_run = sidecar("eval", "--input", str(tmp_path / "input.json"), "--dir", "policies")
    assert denied_run.returncode == 1  # a deny, so scripts can branch on it
    denied = orjson.loads(denied_run.stdout)
    assert denied["allow"] is False
    assert denied["reasons"] == ["run_query: argument sql must be a single SELECT statement"]


def test_eval_prints_the_argument_names_and_decides_on_them(tmp_path: Path) -> None:
    result = sidecar("eval", "--input", "policies/examples/call-run-query.json", "--rule", "argument_names")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["argument_names"] == ["sql"]
    shutil.copytree(ROOT / "policies", tmp_path / "p")
    (tmp_path / "p" / "blind.rego").write_text('package mcp\nimport rego.v1\n\nargument_names contains "limit"\n')
    blind = orjson.loads(sidecar("eval", "--input", "policies/examples/call-run-query.json", "--dir",
                                 str(tmp_path / "p")).stdout)
    # The decision is handed sql and limit only (limit is absent): the SELECT is still judged, and allowed.
    assert blind["allow"] is True


def test_policy_test_fails_a_call_whose_decision_reads_an_argument_it_does_not_name(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "policies", tmp_path / "p")
    (tmp_path / "p" / "limits.rego").write_text(
        'package mcp\nimport rego.v1\n\nreasons contains "limit too high" if input.mcp.tool.arguments.limit > 100\n')
    (tmp_path / "p" / "limits_test.rego").write_text(
        "package mcp_test.limits\nimport rego.v1\n\n"
        'test_high_limit_denied_input := data.mcp_test.fixtures.call("lookup", {"limit": 500}, '
        'data.mcp_test.fixtures.read_only, ["reader"])\n\n'
        "test_high_limit_denied if not data.mcp.decision.allow\n")
    result = sidecar("test", str(tmp_path / "p"))
    assert result.returncode == 1
    assert ("FAIL: data.mcp_test.limits.test_high_limit_denied (data.mcp.decision differs when it sees only the "
            "arguments data.mcp.argument_names names" in result.stdout)
    with (tmp_path / "p" / "limits.rego").open("a") as source:
        source.write('\nargument_names contains "limit" if input.mcp.tool.name == "lookup"\n')
    assert sidecar("test", str(tmp_path / "p")).returncode == 0
