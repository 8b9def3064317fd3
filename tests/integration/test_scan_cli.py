"""`mcp-sidecar scan` over real servers: every planted risk found, nothing on a clean server, the formats, CI exits."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.integration.test_tools_cli import DEMO, sidecar, stdio
from tests.kit import ROOT

SCHEMA = json.loads((ROOT / "proxy/tools/report.schema.json").read_text())


def scan(tmp_path: Path, *args: str, expect: int = 0, **env: str) -> dict[str, Any]:
    result = sidecar("scan", "--format", "json", *args, cwd=tmp_path, **env)
    assert result.returncode == expect, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    return document


def found(document: dict[str, Any]) -> set[tuple[str, str | None, str, str]]:
    return {(f["rule"], f["tool"], f["location"], f["severity"]) for f in document["findings"]}


def test_a_clean_server_has_no_findings_and_says_policy_was_not_evaluated(tmp_path: Path) -> None:
    document = scan(tmp_path, "--upstream-command", stdio("clean"))
    assert document["findings"] == [] and document["score"] == 100
    assert document["server"] == {"name": "tool-safety-clean", "version": "1.0"}
    assert document["counts"] == {"tools": 2, "prompts": 0, "resource_templates": 0}
    assert document["policy"]["evaluated"] is False
    assert "not evaluated" in document["policy"]["note"]
    assert document["source"].endswith("tool_safety_servers clean stdio")


def test_every_sign_of_poisoning_is_found(tmp_path: Path) -> None:
    document = scan(tmp_path, "--upstream-command", stdio("poisoned"))
    assert found(document) == {
        ("poisoning.model-instructions", "fetch_notes", "description", "critical"),
        ("poisoning.invisible-unicode", "fetch_notes", "description", "critical"),
        ("poisoning.credential-reference", "fetch_notes", "description", "high"),
        ("poisoning.invisible-unicode", "fetch_notes", "inputSchema.properties.topic.description", "high"),
    }
    evidence = {f["rule"] + "@" + f["location"]: f["evidence"] for f in document["findings"]}
    assert "Do not tell the user" in evidence["poisoning.model-instructions@description"]
    assert evidence["poisoning.invisible-unicode@description"] == "tag characters: U+E0047 U+E0049"
    assert "~/.ssh/id_rsa" in evidence["poisoning.credential-reference@description"]
    assert document["score"] == 100 - 2 * 25 - 2 * 10
    assert [f["severity"] for f in document["findings"]] == ["critical", "critical", "high", "high"]


def test_an_unannotated_destructive_tool_with_a_free_path_is_found(tmp_path: Path) -> None:
    document = scan(tmp_path, "--upstream-command", stdio("risky"))
    assert found(document) == {
        ("risk.unannotated", "remove_records", "annotations", "high"),
        ("input.unconstrained", "remove_records", "inputSchema.properties.path", "medium"),
    }
    unannotated = document["findings"][0]
    assert unannotated["evidence"] == "no annotations, and its name or description says 'remove'"
    assert "readOnlyHint" in unannotated["fix"]


def test_policy_coverage_with_the_shipped_policies_and_a_given_principal(tmp_path: Path) -> None:
    (tmp_path / "ann.yaml").write_text("sub: ann@example.com\nroles: [reader]\nclaims: {plan: pro}\n")
    document = scan(tmp_path, "--upstream-command", stdio("risky"), "--policy-dir", str(ROOT / "policies"),
                    "--as", "ann.yaml")
    policy = document["policy"]
    assert policy["evaluated"] is True and policy["revision"]
    assert policy["principals"][0] == "anonymous" and policy["principals"][-1] == "ann@example.com"
    assert policy["decisions"]["remove_records"] == {"anonymous": "deny", "role:admin": "allow",
                                                     "role:analyst": "deny", "role:developer": "deny",
                                                     "role:operator": "approval", "role:reader": "deny",
                                                     "ann@example.com": "deny"}
    assert policy["decisions"]["add"]["ann@example.com"] == "allow"
    rules = found(document)
    assert ("policy.destructive-without-approval", "remove_records", "policy", "medium") in rules
    assert ("policy.unmentioned-tool", "remove_records", "policy", "low") in rules
    assert ("policy.no-rate-limit", "add", "rate_limits", "medium") in rules
    assert not any(rule == "policy.anonymous-callable" for rule, *_ in rules)
    unconstrained = [f for f in document["findings"] if f["rule"] == "input.unconstrained"]
    assert unconstrained[0]["evidence"].endswith("and no policy rule reads it")


def test_drift_against_the_lock_is_reported(tmp_path: Path) -> None:
    assert sidecar("tools", "lock", "--upstream-command", stdio("mutable"), cwd=tmp_path).returncode == 0
    document = scan(tmp_path, "--upstream-command", stdio("mutable", "--variant", "2"), "--lock", "tools.lock")
    assert ("drift.changed", "fetch_notes", "lock", "high") in found(document)
    assert document["lock"] == "tools.lock"


@pytest.mark.parametrize(("flags", "status"), [
    (["--fail-on", "critical"], 1), (["--fail-on", "high"], 1), (["--fail-under", "31"], 1),
    (["--fail-under", "30"], 0), ([], 0),
])
def test_ci_exit_status_is_chosen_by_flags(tmp_path: Path, flags: list[str], status: int) -> None:
    scan(tmp_path, "--upstream-command", stdio("poisoned"), *flags, expect=status)  # score 30


def test_a_saved_tools_list_result_is_scanned_like_a_live_one(tmp_path: Path) -> None:
    tools = [{"name": "run_sql", "description": "Run a SQL statement.",
              "inputSchema": {"type": "object", "properties": {"sql": {"type": "string"}}},
              "annotations": {"readOnlyHint": True, "openWorldHint": False}}]
    (tmp_path / "listed.json").write_text(json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}))
    document = scan(tmp_path, "--tools-file", "listed.json")
    assert document["source"] == "listed.json" and document["server"] == {"name": "listed"}
    assert found(document) == {("input.unconstrained", "run_sql", "inputSchema.properties.sql", "medium")}


def test_two_runs_differ_only_in_generated_at(tmp_path: Path) -> None:
    first = scan(tmp_path, "--upstream-command", stdio("poisoned"))
    second = scan(tmp_path, "--upstream-command", stdio("poisoned"))
    assert first.pop("generated_at") != "" and second.pop("generated_at") != ""
    assert first == second


def test_markdown_is_the_default_and_sarif_and_html_go_to_files(tmp_path: Path) -> None:
    markdown = sidecar("scan", "--upstream-command", stdio("risky"), cwd=tmp_path)
    assert markdown.returncode == 0 and markdown.stdout.startswith("# MCP security report: tool-safety-risky 1.0")
    assert "| high | risk.unannotated | remove_records | annotations |" in markdown.stdout
    for kind in ("sarif", "html"):
        result = sidecar("scan", "--upstream-command", stdio("risky"), "--format", kind, "--out", f"r.{kind}",
                         cwd=tmp_path)
        assert result.returncode == 0 and result.stdout == ""
    sarif = json.loads((tmp_path / "r.sarif").read_text())
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == {"risk.unannotated", "input.unconstrained"}
    assert "remove_records" in (tmp_path / "r.html").read_text()


def test_published_mcp_server_time_has_no_findings(tmp_path: Path) -> None:
    document = scan(tmp_path, "--upstream-command", str(Path(sys.executable).parent / "mcp-server-time"))
    assert document["server"]["name"] == "mcp-time" and document["counts"]["tools"] == 2
    assert document["findings"] == []


def test_the_demo_server_scan_finds_its_destructive_tool(tmp_path: Path) -> None:
    document = scan(tmp_path, "--upstream-command", DEMO)
    assert ("risk.destructive", "delete_file", "annotations", "medium") in found(document)
    assert ("input.unconstrained", "delete_file", "inputSchema.properties.path", "medium") in found(document)
