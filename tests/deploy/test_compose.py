"""deploy/compose.yaml: Docker cannot run here, so its structure is checked: the services point at each other,
every mounted file exists, the sidecar config loads with the sidecar's own loader (auth and policy on, with the dev
issuer on loopback; Redis for limits, cache and approvals), Prometheus scrapes the admin port and Grafana is
provisioned with the dashboard and its datasource."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import yaml

from proxy.config import Config, load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent


def services() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]


def mounts(service: dict) -> dict[str, Path]:
    """Container path -> file in deploy/ of each bind mount."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = DEPLOY / source
    return found


def sidecar_config() -> Config:
    sidecar = services()["sidecar"]
    path = mounts(sidecar)[sidecar["command"][sidecar["command"].index("--config") + 1]]
    return load_config(path, env={})


def test_services_are_wired_together_and_published_on_loopback_only() -> None:
    found = services()
    assert set(found) == {"sidecar", "dev-idp", "demo", "redis", "jaeger", "prometheus", "grafana"}
    for name, service in found.items():
        assert "image" in service, name
        for dependency in service.get("depends_on", []):
            assert dependency in found, f"{name} depends on unknown {dependency}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for source in mounts(service).values():
            assert source.is_file(), f"{name} mounts missing {source}"
    for name in ("sidecar", "dev-idp", "demo"):  # the image: read-only root, /tmp writable, nothing to escalate
        assert found[name]["read_only"] is True and "/tmp" in found[name]["tmpfs"]
        build = found[name]["build"]
        assert found[name]["cap_drop"] == ["ALL"] and ((DEPLOY / build["context"]) / build["dockerfile"]).is_file()


def test_the_sidecar_runs_auth_and_policy_against_the_dev_issuer() -> None:
    config, found = sidecar_config(), services()
    assert config.auth.mode == "required" and config.policy.engine == "rego"
    issuer = urlsplit(config.auth.jwks_url)
    assert issuer.hostname == "127.0.0.1" and list(config.auth.issuers) == [f"http://127.0.0.1:{issuer.port}"]
    dev_idp = found["dev-idp"]
    assert dev_idp["network_mode"] == "service:sidecar"  # its loopback is the sidecar's
    assert dev_idp["command"][:3] == ["dev-idp", "--listen", f"127.0.0.1:{issuer.port}"]
    assert dev_idp["environment"]["MCP_SIDECAR__SERVER__PUBLIC_URL"] == config.server.public_url
    assert config.policy.directory == "/etc/mcp-sidecar/policies"  # COPY'd there by the Dockerfile
    assert "COPY --chown=root:root policies /etc/mcp-sidecar/policies" in (DEPLOY / "Dockerfile").read_text()


def test_redis_holds_limits_cache_and_approvals() -> None:
    config = sidecar_config()
    urls = [config.rate_limits.redis_url, config.cache.redis_url, config.approval.redis_url]
    assert (config.rate_limits.backend, config.cache.backend, config.approval.backend) == ("redis",) * 3
    assert {urlsplit(url).hostname for url in urls} == {"redis"} and len(set(urls)) == 3
    plans = orjson.loads((ROOT / "policies" / "data.json").read_bytes())["settings"]["rate_limit"]["plans"]
    assert set(plans.values()) <= {bucket.name for bucket in config.rate_limits.buckets}  # the policy's choices


def test_upstream_traces_and_scrapes_point_at_the_services() -> None:
    config, found = sidecar_config(), services()
    upstream = urlsplit(config.upstream.url)
    assert upstream.hostname == "demo"
    assert str(upstream.port) == found["demo"]["command"][found["demo"]["command"].index("--port") + 1]
    assert urlsplit(config.telemetry.otlp_endpoint).hostname == "jaeger" and config.telemetry.prometheus
    admin_port = config.server.admin_listen.rsplit(":", 1)[1]
    published = {port.rsplit(":", 1)[1] for port in found["sidecar"]["ports"]}
    assert {config.server.listen.rsplit(":", 1)[1], admin_port} == published
    prometheus = mounts(found["prometheus"])
    scrape = yaml.safe_load(prometheus["/etc/prometheus/prometheus.yml"].read_text())
    [job] = scrape["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"sidecar:{admin_port}"]
    assert scrape["rule_files"] == ["/etc/prometheus/alerts.yml"] and "/etc/prometheus/alerts.yml" in prometheus


def test_grafana_is_provisioned_with_the_dashboard_and_its_datasource() -> None:
    grafana = mounts(services()["grafana"])
    [datasource] = yaml.safe_load(next(path for target, path in grafana.items() if "datasources" in target)
                                  .read_text())["datasources"]
    [provider] = yaml.safe_load(next(path for target, path in grafana.items() if "provisioning/dashboards" in target)
                                .read_text())["providers"]
    dashboards = [target for target in grafana if target.startswith(provider["options"]["path"] + "/")]
    assert dashboards and datasource["url"] == "http://prometheus:9090"
    dashboard = json.loads(grafana[dashboards[0]].read_text())
    used = {target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel["targets"]}
    assert used == {datasource["uid"]}
