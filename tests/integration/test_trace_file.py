"""`telemetry.exporter: file` over real sockets: a call through the sidecar lands in the file as JSON lines with
its parent/child structure, and `mcp-sidecar traces show` renders that file as a tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from mcp import Client
from opentelemetry.sdk.trace import TracerProvider

from tests.kit import child_env, make_config, run_sidecar


async def test_a_call_lands_in_the_file_as_a_tree(stateless_upstream: str, tmp_path: Path) -> None:
    path = tmp_path / "spans" / "traces.jsonl"
    config = make_config(stateless_upstream, telemetry__exporter="file", telemetry__file_path=str(path),
                         telemetry__service_name="sidecar-under-test")
    host = TracerProvider().get_tracer("host")
    async with run_sidecar(config) as sidecar:
        with host.start_as_current_span("host turn") as root:
            async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:
                await client.call_tool("add", {"a": 1, "b": 2})
    # The sidecar flushed its batch on shutdown.
    records = [orjson.loads(line) for line in path.read_text().splitlines()]
    trace_id = format(root.get_span_context().trace_id, "032x")
    calls = [record for record in records if record["name"] == "tools/call add"]
    [server] = [record for record in calls if record["kind"] == "SERVER"]
    [client_span] = [record for record in calls if record["kind"] == "CLIENT"]
    assert server["trace_id"] == client_span["trace_id"] == trace_id
    assert server["parent_span_id"] == format(root.get_span_context().span_id, "016x")
    assert client_span["parent_span_id"] == server["span_id"]
    assert server["attributes"]["gen_ai.tool.name"] == "add"
    assert server["service"] == "sidecar-under-test" and server["duration_ms"] >= client_span["duration_ms"] > 0
    assert "gen_ai.tool.call.arguments" not in server["attributes"]

    shown = subprocess.run([sys.executable, "-m", "proxy", "traces", "show", str(path), "--trace", trace_id[:12]],
                           env=child_env(), capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"trace {trace_id}"
    [server_line] = [line for line in lines if "tools/call add [SERVER]" in line]
    [client_line] = [line for line in lines if "tools/call add [CLIENT]" in line]
    # The session's other calls are roots beside it, all children of the host's span (not in the file).
    assert server_line[:3] in ("├─ ", "└─ ") and f"(parent {server['parent_span_id']})" in server_line
    assert client_line[3:6] == "└─ " and lines.index(client_line) == lines.index(server_line) + 1
    assert "gen_ai.tool.name=add" in server_line and " ms " in client_line
