"""deploy/: Docker cannot run here, so the compose file, its config and the Dockerfile are checked for
consistency: every referenced file exists, the sidecar config validates, and the services point at each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from proxy.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_has_the_four_services_wired_together() -> None:
    services = compose()["services"]
    assert set(services) == {"jaeger", "redis", "demo", "sidecar"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert services["demo"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"


def test_build_context_and_mounted_files_exist() -> None:
    for name, service in compose()["services"].items():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert (DEPLOY / source).is_file(), f"{name} mounts missing {source}"


def test_sidecar_config_validates_and_points_at_the_compose_services() -> None:
    services = compose()["services"]
    sidecar = services["sidecar"]
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in sidecar["volumes"]}
    config_path = mounted[sidecar["command"][sidecar["command"].index("--config") + 1]]
    config = load_config(DEPLOY / config_path, env={})
    upstream = urlsplit(config.upstream.url)
    assert upstream.hostname == "demo"
    demo_command = services["demo"]["command"]
    assert str(upstream.port) == demo_command[demo_command.index("--port") + 1]
    assert config.telemetry.otlp_endpoint == "http://jaeger:4318"
    published = {port.rsplit(":", 1)[1] for port in sidecar["ports"]}
    assert {config.server.listen.rsplit(":", 1)[1], config.server.admin_listen.rsplit(":", 1)[1]} == published
    assert "8081/readyz" in " ".join(sidecar["healthcheck"]["test"])


def test_dockerfile_copies_what_exists_and_runs_the_console_script() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for sources in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), source
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert 'ENTRYPOINT ["mcp-sidecar", "serve"]' in dockerfile and "mcp-sidecar" in scripts
    assert re.search(r"^USER \d+", dockerfile, flags=re.MULTILINE)  # not root
