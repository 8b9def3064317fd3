"""`mcp-sidecar audit tail|query` over a real sidecar's audit file, and `tail --follow` across a rotation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from mcp import Client

from tests.kit import ROOT, child_env, make_config, run_sidecar


def audit_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "audit", *args], env=child_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


async def test_query_and_tail_filter_a_real_audit_file(stateless_upstream, tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    config = make_config(stateless_upstream, audit__enabled=True, audit__sink="file", audit__path=str(path))
    async with run_sidecar(config) as sidecar, Client(sidecar.url, cache=None) as client:
        for n in range(3):
            await client.call_tool("add", {"a": n, "b": 1})
        await client.call_tool("echo", {"text": "hi"})
    with path.open("a") as handle:
        handle.write("not json\n")
    everything = audit_cli("query", "--file", str(path), "--json")
    events = [json.loads(line) for line in everything.stdout.splitlines()]
    assert everything.returncode == 0 and "skipped 1 lines" in everything.stderr
    assert [e["target"] for e in events if e["method"] == "tools/call"] == ["add", "add", "add", "echo"]
    adds = audit_cli("query", "--file", str(path), "--tool", "add", "--outcome", "allowed", "--principal",
                     "anonymous", "--json").stdout.splitlines()
    assert len(adds) == 3 and all(json.loads(line)["tool"] == "add" for line in adds)
    assert audit_cli("query", "--file", str(path), "--outcome", "denied").stdout == ""
    last = audit_cli("tail", "--file", str(path), "-n", "1", "--tool", "add").stdout.split()
    assert last[2:5] == ["tools/call", "add", "allowed"] and last[1] == "anonymous"
    future = audit_cli("query", "--file", str(path), "--since", "2999-01-01T00:00:00Z")
    assert future.returncode == 0 and future.stdout == ""
    bad = audit_cli("query", "--file", str(path), "--since", "yesterday")
    assert bad.returncode == 2 and "RFC 3339" in bad.stderr


def line(**fields) -> str:
    return json.dumps({"event": "mcp.audit", "time": time.time(), "method": "tools/call", "outcome": "allowed",
                       **fields}) + "\n"


def read_line(process: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """One line of the child's output within `timeout` (the pipe is read by a thread-free poll on its fd)."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError("no output in time")
    return process.stdout.readline()


def test_tail_follows_new_events_and_a_rotated_file(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(line(target="old", principal="a"))
    process = subprocess.Popen([sys.executable, "-m", "proxy", "audit", "tail", "--file", str(path), "-f", "--json",
                                "--principal", "bob"], env=child_env(), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, bufsize=1)
    try:
        with path.open("a") as handle:
            handle.write(line(target="skip", principal="a") + line(target="first", principal="bob"))
        assert json.loads(read_line(process))["target"] == "first"
        rotated = tmp_path / "audit.jsonl.1"
        os.replace(path, rotated)
        path.write_text(line(target="after-rotation", principal="bob"))
        assert json.loads(read_line(process))["target"] == "after-rotation"
    finally:
        process.terminate()
        process.wait(timeout=10)
