"""`policy init --from-upstream` against the demo server (HTTP and stdio), then the workflow a team runs on the
result: the shipped tests still pass on their own fixture data, and `policy eval` exits 1 on a deny."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from tests.kit import ROOT, child_env

DEMO_STDIO = f"{sys.executable} -m proxy.runtime.demo stdio"


def policy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "policy", *args], env=child_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=90)


def call_input(tmp_path: Path, tool: str, annotations: dict | None, roles: list[str]) -> str:
    document = orjson.loads((ROOT / "policies/examples/call-run-query.json").read_bytes())
    document["principal"]["roles"] = roles
    document["mcp"]["tool"].update(name=tool, arguments={}, annotations=annotations)
    path = tmp_path / f"{tool}-{'-'.join(roles)}.json"
    path.write_bytes(orjson.dumps(document))
    return str(path)


def test_init_from_an_http_upstream_groups_its_tools(stateless_upstream: str, tmp_path: Path) -> None:
    output = tmp_path / "data.json"
    result = policy("init", "--from-upstream", stateless_upstream, "--output", str(output))
    assert result.returncode == 0, result.stderr
    roles = orjson.loads(output.read_bytes())["settings"]["tool_roles"]
    assert {"add", "echo", "lookup"} <= set(roles["reader"]) and "delete_file" not in roles["reader"] + roles["editor"]
    assert roles["admin"] == ["*"]
    assert "destructive or unannotated (admin; operator with approval): " in result.stdout
    assert "delete_file" in result.stdout.splitlines()[3]
    again = policy("init", "--from-upstream", stateless_upstream, "--output", str(output))
    assert again.returncode == 2 and "exists" in again.stderr


def test_init_in_a_copied_policy_directory_then_test_and_eval(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", directory)
    result = policy("init", "--from-upstream", DEMO_STDIO, "--output", str(directory / "data.json"), "--force")
    assert result.returncode == 0, result.stderr
    data = orjson.loads((directory / "data.json").read_bytes())
    assert data["settings"]["arguments"]["path_prefix"] == {  # kept for the demo's delete_file, read_file dropped
        "delete_file": {"argument": "path", "prefixes": ["/tmp/scratch/"]}}
    # The shipped tests read data_test.json, not the data.json just written.
    tested = policy("test", str(directory))
    assert tested.returncode == 0, tested.stdout
    read_only = {"readOnlyHint": True}
    allowed = policy("eval", "--dir", str(directory), "--input", call_input(tmp_path, "add", read_only, ["reader"]))
    assert allowed.returncode == 0 and orjson.loads(allowed.stdout)["allow"] is True
    destructive = {"destructiveHint": True}
    denied = policy("eval", "--dir", str(directory),
                    "--input", call_input(tmp_path, "delete_file", destructive, ["editor"]))
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert {"delete_file is destructive: it needs an elevated role",
            "no role of yours grants the tool delete_file"} <= set(orjson.loads(denied.stdout)["reasons"])


def test_an_unreachable_upstream_is_bad_input(tmp_path: Path) -> None:
    result = policy("init", "--from-upstream", "http://127.0.0.1:9/mcp", "--output", str(tmp_path / "d.json"))
    assert result.returncode == 2 and "could not list the tools of http://127.0.0.1:9/mcp" in result.stderr
    assert not (tmp_path / "d.json").exists()
