"""/metrics answers the operator questions, and the audit file holds exactly one event per message."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import yaml
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from proxy.telemetry.setup import Telemetry
from tests.kit import child_env, free_port, make_config, make_ctx, modern_headers, modern_request, run_sidecar
from tests.otlp_kit import SERVER, otlp_receiver

AUDIT_FIELDS = {"decision_id", "time", "trace_id", "span_id", "principal", "method", "tool", "decision", "reasons",
                "policy_revision", "obligations", "cache", "rate_limit", "upstream_status", "latency_ms", "outcome"}


async def scrape(http: aiohttp.ClientSession, admin_url: str) -> dict[tuple[str, frozenset], float]:
    async with http.get(admin_url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there is none yet)."""
    wanted = set(labels.items())
    return sum(v for (sample, sample_labels), v in samples.items() if sample == name and wanted <= sample_labels)


async def test_metrics_move_as_calls_are_made(stateless_upstream: str) -> None:
    async with run_sidecar(make_config(stateless_upstream)) as sidecar, aiohttp.ClientSession() as http:
        before = await scrape(http, sidecar.admin_url)
        assert value(before, "mcp_sidecar_policy_reload_failures_total") == 0  # present before anything happened
        async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:
            await client.call_tool("add", {"a": 1, "b": 2})
            await client.call_tool("add", {"a": 3, "b": 4})
            await client.call_tool("fail", {})
        sidecar.app.deps.metrics.count("policy_reload_failures")
        after = await scrape(http, sidecar.admin_url)

    calls = "mcp_sidecar_calls_total"
    assert value(after, calls, gen_ai_tool_name="add", mcp_sidecar_outcome="allowed", error_type="") == 2
    assert value(after, calls, gen_ai_tool_name="fail", error_type="tool_error") == 1
    assert value(after, calls, mcp_method_name="tools/list") >= 1
    duration = "mcp_server_operation_duration_seconds_count"
    assert value(after, duration, gen_ai_tool_name="add") == 2
    assert value(after, "mcp_server_operation_duration_seconds_bucket", gen_ai_tool_name="add", le="+Inf") == 2
    assert value(after, "mcp_client_operation_duration_seconds_count", gen_ai_tool_name="add") == 2
    assert value(after, "mcp_sidecar_in_flight") == 0
    assert value(after, "mcp_sidecar_policy_reload_failures_total") == 1


async def test_upstream_errors_are_counted_by_outcome() -> None:
    config = make_config(f"http://127.0.0.1:{free_port()}/mcp")  # nothing listens there
    async with run_sidecar(config) as sidecar, aiohttp.ClientSession() as http:
        body = orjson.dumps(modern_request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}}))
        async with http.post(sidecar.url, data=body, headers=modern_headers("tools/call", "add")) as reply:
            assert reply.status == 502
        samples = await scrape(http, sidecar.admin_url)
    assert value(samples, "mcp_sidecar_calls_total", gen_ai_tool_name="add", mcp_sidecar_outcome="upstream_error",
                 error_type="upstream_unavailable") == 1


def read_events(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


async def test_audit_file_has_one_event_per_message_with_trace_ids_and_no_arguments(
        stateless_upstream: str, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    async with otlp_receiver() as receiver:
        config = make_config(stateless_upstream, audit__enabled=True, audit__sink="file", audit__path=str(audit),
                             telemetry__otlp_endpoint=receiver.url, telemetry__otlp_metrics=False)
        async with run_sidecar(config) as sidecar, Client(sidecar.url, mode="2026-07-28", cache=None) as client:
            await client.call_tool("echo", {"text": "top-secret-argument"})
            await client.call_tool("fail", {"message": "nope"})
        # The sidecar flushed its spans on shutdown, before run_sidecar returned.
    events = read_events(audit)
    servers = {span.attributes["mcp_sidecar.decision.id"]: span for span in receiver.spans if span.kind == SERVER}
    assert len(events) == len(servers) >= 3  # tools/list, echo, fail: one event per message, no more
    for event in events:
        assert event.keys() >= AUDIT_FIELDS
        span = servers[event["decision_id"]]
        assert (event["trace_id"], event["span_id"]) == (span.trace_id, span.span_id)
        assert "arguments" not in event
    [echo] = [event for event in events if event["tool"] == "echo"]
    assert (echo["method"], echo["outcome"], echo["upstream_status"], echo["principal"]) == \
        ("tools/call", "allowed", 200, "anonymous")
    assert echo["latency_ms"] > 0
    assert b"top-secret-argument" not in audit.read_bytes()


async def test_sigterm_loses_no_audit_event(stateful_upstream: str, tmp_path: Path) -> None:
    """A sidecar process with a file sink: calls before and during SIGTERM are all on disk after it exits."""
    audit, listen, admin = tmp_path / "audit.jsonl", free_port(), free_port()
    config_file = tmp_path / "sidecar.yaml"
    config_file.write_text(yaml.safe_dump({
        "auth": {"mode": "off"},
        "server": {"listen": f"127.0.0.1:{listen}", "admin_listen": f"127.0.0.1:{admin}",
                   "shutdown_grace_seconds": 5},
        "upstream": {"url": stateful_upstream},
        "audit": {"sink": "file", "path": str(audit)},
    }))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "serve", "--config", str(config_file),
        env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_for_admin(process, admin)
        url = f"http://127.0.0.1:{listen}/mcp"
        async with Client(url, mode="2026-07-28", cache=None) as client, aiohttp.ClientSession() as http:
            for number in range(3):
                await client.call_tool("add", {"a": number, "b": 1})
            slow = asyncio.create_task(client.call_tool("slow_count", {"steps": 4, "delay_ms": 200}))
            await wait_until_in_flight(http, f"http://127.0.0.1:{admin}")
            process.send_signal(signal.SIGTERM)
            result = await asyncio.wait_for(slow, timeout=8)
        assert result.content[0].text == "counted to 4"  # drained, not cut off
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    events = read_events(audit)
    tools = sorted(event["tool"] for event in events if event["method"] == "tools/call")
    assert tools == ["add", "add", "add", "slow_count"]
    assert len({event["decision_id"] for event in events}) == len(events)


async def wait_for_admin(process: asyncio.subprocess.Process, port: int) -> None:
    async with asyncio.timeout(20):
        while True:
            assert process.returncode is None, "the sidecar exited before listening"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


async def wait_until_in_flight(http: aiohttp.ClientSession, admin_url: str) -> None:
    async with asyncio.timeout(5):
        while value(await scrape(http, admin_url), "mcp_sidecar_in_flight", mcp_method_name="tools/call") < 1:
            await asyncio.sleep(0.02)


async def test_otlp_metrics_share_the_prometheus_aggregation_unless_delta_is_wanted() -> None:
    async with otlp_receiver() as receiver:
        config = make_config(telemetry__otlp_endpoint=receiver.url)
        shared = Telemetry.from_config(config, env={})
        assert shared.metric_push is not None and shared.metric_push.reader is shared.prometheus
        delta = Telemetry.from_config(config, env={"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"})
        alone = Telemetry.from_config(make_config(telemetry__otlp_endpoint=receiver.url, telemetry__prometheus=False),
                                      env={})
        assert delta.metric_push is None and alone.metric_push is None
        shared.metrics.started(make_ctx())
        shared.metrics.finished(make_ctx(), None, 0.01)
        await shared.shutdown()  # the last push goes out on shutdown
        assert {"mcp_sidecar.calls", "mcp.server.operation.duration"} <= receiver.metric_names
        await delta.shutdown()
        await alone.shutdown()
