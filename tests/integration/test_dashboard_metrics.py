"""Every metric the Grafana dashboard and the Prometheus alert rules use exists in a live sidecar's /metrics
(telemetry and Prometheus on, a policy that denies one tool, calls made, then scraped)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import yaml
from mcp import Client

from tests.kit import ROOT, make_config, run_sidecar

DEPLOY = ROOT / "deploy"
POLICY = """package mcp
import rego.v1

decision := {"allow": false, "reasons": ["echo is switched off"]} if input.mcp.tool.name == "echo"
else := {"allow": true, "reasons": []}

visible contains item.key if some item in input.mcp.list.items
"""
PROMETHEUS_OWN = {"up"}  # series Prometheus makes itself for every scrape target
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
SUFFIXES = ("_bucket", "_sum", "_count")


def expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "mcp-sidecar.json").read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return found + [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def metric_names(expression: str) -> set[str]:
    """The series names of a PromQL expression: identifiers left once label matchers, groupings, ranges and
    function calls are taken out."""
    bare = GROUPING.sub(" ", re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expression))
    return {name for name in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare)
            if name not in {"and", "or", "unless", "le"} and not name.isdigit()}


def test_the_name_extraction_sees_series_not_labels_or_functions() -> None:
    expression = ('histogram_quantile(0.95, sum by (le, mcp_method_name) (rate(mcp_x_bucket{error_type!=""}[5m])))'
                  " / sum(rate(mcp_y_total[5m])) > 0.5 or up == 0")
    assert metric_names(expression) == {"mcp_x_bucket", "mcp_y_total", "up"}


async def test_every_metric_they_use_is_exported(stateless_upstream: str, tmp_path: Path) -> None:
    (tmp_path / "policy.rego").write_text(POLICY)
    config = make_config(stateless_upstream, policy__engine="rego", policy__directory=str(tmp_path),
                         telemetry__prometheus=True, cache__enabled=True, cache__cache_read_only_tools=True)
    async with run_sidecar(config) as sidecar:
        async with Client(sidecar.url, mode="2026-07-28", cache=None) as client:
            await client.call_tool("add", {"a": 1, "b": 2})
            denied = await client.call_tool("echo", {"text": "hi"})
            await client.call_tool("fail", {"message": "nope"})
        async with aiohttp.ClientSession() as http, http.get(f"{sidecar.admin_url}/metrics") as scraped:
            text = await scraped.text()
    assert denied.is_error
    exported = {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines() if line and line[0] != "#"}
    used = set().union(*(metric_names(expression) for expression in expressions()))
    assert {"mcp_sidecar_policy_denials_total", "mcp_sidecar_tools_drifts_total"} <= used
    missing = sorted(name for name in used - PROMETHEUS_OWN if name not in exported)
    assert not missing, f"used by deploy/grafana or deploy/prometheus, absent from /metrics: {missing}"
    labels = set(re.findall(r"\b(\w+)\s*(?:=|!=|=~)\s*\"", " ".join(expressions())))
    assert labels - {"job"} <= set(re.findall(r"[{,](\w+)=", text)), "a label they filter on is never exported"
