"""deploy/kubernetes: every overlay renders with `kubectl kustomize`, validates against the Kubernetes schemas
(kubernetes-validate), holds what the Pod promises (probes on the admin listener, a restricted security context on
every container, the MCP server on loopback and out of the Service, the admin port for the monitoring namespace
only), and every config file and policy it mounts loads with the sidecar's own loader. No cluster runs here."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config import Config, load_config
from proxy.policy.loader import read_source
from proxy.policy.rego import compile_policy

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir() if path.is_dir())
SCHEMA_VERSION = "1.30.0"
OPERATOR_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}  # a CRD: no schema among Kubernetes' own

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None,
                                reason="kubectl is not installed (Debian: apt-get install kubectl)")


def render(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(["kubectl", "kustomize", str(KUBERNETES / "overlays" / overlay)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def one(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [doc for doc in documents if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]
    return found


def containers(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    pod = one(documents, "Deployment")["spec"]["template"]["spec"]
    return {container["name"]: container for container in pod["containers"]}


def sidecar_config(documents: list[dict[str, Any]], tmp_path: Path) -> Config:
    """The mounted config file, with the environment the container gets (values and envFrom Secrets)."""
    sidecar = containers(documents)["sidecar"]
    config_map = one(documents, "ConfigMap", next(volume["configMap"]["name"] for volume in _volumes(documents)
                                                 if volume["name"] == "config"))
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "sidecar.yaml"
    path.write_text(_with_secret_mounts(documents, sidecar, config_map["data"]["sidecar.yaml"], tmp_path))
    env = {item["name"]: item["value"] for item in sidecar.get("env", [])}
    for source in sidecar.get("envFrom", []):
        secret = one(documents, "Secret", source["secretRef"]["name"])
        env.update({key: base64.b64decode(value).decode() for key, value in secret["data"].items()})
    return load_config(path, env=env)


def _with_secret_mounts(documents: list[dict[str, Any]], container: dict[str, Any], text: str, root: Path) -> str:
    """The config text with each mounted Secret's files written below `root` and its mount path pointed there."""
    volumes = {volume["name"]: volume for volume in _volumes(documents)}
    for mount in container["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        for key, value in one(documents, "Secret", secret["secretName"])["data"].items():
            (target / key).write_bytes(base64.b64decode(value))
        text = text.replace(mount["mountPath"], str(target))
    return text


def _volumes(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return one(documents, "Deployment")["spec"]["template"]["spec"]["volumes"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_and_validates(overlay: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    documents = render(overlay)
    for document in documents:
        if (document["apiVersion"], document["kind"]) in OPERATOR_KINDS:
            assert document["spec"]["endpoints"] and document["spec"]["selector"]
            continue
        kubernetes_validate.validate(document, SCHEMA_VERSION, strict=True)  # raises ValidationError
    assert {doc["kind"] for doc in documents} >= {"Deployment", "Service", "ConfigMap", "Secret", "NetworkPolicy",
                                                  "PodDisruptionBudget", "ServiceAccount"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_is_locked_down_and_probed_on_the_admin_listener(overlay: str, tmp_path: Path) -> None:
    documents = render(overlay)
    config = sidecar_config(documents, tmp_path)
    pod = one(documents, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    for name, container in containers(documents).items():
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True, name
        assert context["runAsNonRoot"] and context["capabilities"]["drop"] == ["ALL"], name
        assert context["seccompProfile"]["type"] == "RuntimeDefault", name
        assert container["resources"]["requests"] and container["resources"]["limits"], name
        assert any(mount["mountPath"] == "/tmp" for mount in container["volumeMounts"]), name
    sidecar, server = containers(documents)["sidecar"], containers(documents)["mcp-server"]
    ports = {port["name"]: port["containerPort"] for port in sidecar["ports"]}
    assert ports["admin"] == int(config.server.admin_listen.rsplit(":", 1)[1])
    assert ports["mcp"] == int(config.server.listen.rsplit(":", 1)[1])
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    host = server["command"][server["command"].index("--host") + 1]
    port = server["command"][server["command"].index("--port") + 1]
    assert host == "127.0.0.1" and config.upstream.url == f"http://127.0.0.1:{port}/mcp"
    service_ports = {port["port"] for doc in documents if doc["kind"] == "Service" for port in doc["spec"]["ports"]}
    assert int(port) not in service_ports and ports["mcp"] in service_ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_admin_port_is_for_the_monitoring_namespace_only(overlay: str) -> None:
    policy = one(render(overlay), "NetworkPolicy")["spec"]
    admin_rules = [rule for rule in policy["ingress"] if any(port["port"] == "admin" for port in rule["ports"])]
    assert [rule["from"] for rule in admin_rules] == [
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]]
    assert all("from" in rule for rule in admin_rules) and policy["policyTypes"] == ["Ingress"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_mounted_policy_loads_and_updates_in_place(overlay: str, tmp_path: Path) -> None:
    documents = render(overlay)
    config = sidecar_config(documents, tmp_path)
    mount = next(m for m in containers(documents)["sidecar"]["volumeMounts"] if m["name"] == "policies")
    assert "subPath" not in mount  # a subPath mount never sees an update
    [volume] = [volume for volume in _volumes(documents) if volume["name"] == "policies"]
    if "configMap" not in volume:  # git-sync: a checkout in a shared volume, behind the `current` link
        git_sync = containers(documents)["git-sync"]
        assert f"--root={mount['mountPath']}" in git_sync["args"] and "--link=current" in git_sync["args"]
        assert config.policy.directory.startswith(mount["mountPath"] + "/current/")
        assert not [doc for doc in documents if doc["metadata"]["name"] == "mcp-sidecar-policies"]
        return
    assert mount["mountPath"] == config.policy.directory
    policies = one(documents, "ConfigMap", volume["configMap"]["name"])
    assert policies["metadata"]["name"] == "mcp-sidecar-policies"  # no hash suffix: edited in place, not replaced
    for name, text in policies["data"].items():
        (tmp_path / "policies").mkdir(exist_ok=True)
        (tmp_path / "policies" / name).write_text(text)
    source = read_source(tmp_path / "policies")
    compile_policy(source.modules, source.data)
    assert "data.json" in policies["data"] and len(source.modules) >= 5


def test_the_replicas_overlay_shares_redis_and_scales(tmp_path: Path) -> None:
    documents = render("replicas-with-redis")
    config = sidecar_config(documents, tmp_path / "replicas")
    assert (config.rate_limits.backend, config.cache.backend, config.approval.backend) == ("redis",) * 3
    assert one(documents, "Deployment")["spec"]["replicas"] >= 2
    hpa = one(documents, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == one(documents, "Deployment")["metadata"]["name"]
    assert hpa["minReplicas"] >= 2 and one(documents, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "admin"
    single = sidecar_config(render("single"), tmp_path / "single")
    assert single.rate_limits.backend == "memory"
