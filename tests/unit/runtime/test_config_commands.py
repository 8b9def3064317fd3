"""`mcp-sidecar config check`, `config reference` and `--version` through the command's own entry point."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from proxy.config import load_config
from proxy.config.reference import render
from proxy.runtime.cli import main
from proxy.runtime.config_commands import MASK, masked


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        main(list(argv))
    out, err = capsys.readouterr()
    return ended.value.code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"mcp-sidecar {version('mcp-sidecar')}\n", "")


def test_secrets_are_masked_and_the_rest_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "from-env")
    config = load_config(None, env={}, overrides={
        "upstream.url": "http://127.0.0.1:9/mcp", "auth.mode": "off", "policy.engine": "off",
        "upstream.headers": {"X-Api-Key": {"value": "hunter2"}, "X-Other": {"env": "UPSTREAM_KEY"}},
        "upstream.env": {"API_TOKEN": "s3cret"},
        "telemetry.otlp_headers": {"authorization": "Bearer collector"},
        "cache.enabled": True, "cache.backend": "redis", "cache.redis_url": "redis://:pa55@cache:6379/0",
        "rate_limits.buckets": [{"name": "everyone", "capacity": 5, "refill_per_second": 1}],
    })
    data = masked(config)
    assert data["upstream"]["headers"] == {"X-Api-Key": {"value": MASK, "env": None, "file": None, "prefix": ""},
                                           "X-Other": {"value": None, "env": "UPSTREAM_KEY", "file": None,
                                                       "prefix": ""}}
    assert "env" not in data["upstream"]  # an HTTP upstream never read it: the effective config leaves it out
    stdio = masked(load_config(None, env={}, overrides={"upstream.command": "server --stdio", "auth.mode": "off",
                                                        "upstream.env": {"API_TOKEN": "s3cret"}}))
    assert stdio["upstream"]["env"] == {"API_TOKEN": MASK} and "s3cret" not in repr(stdio)
    assert data["telemetry"]["otlp_headers"] == {"authorization": MASK}
    assert data["cache"]["redis_url"] == "redis://:***@cache:6379/0"
    assert data["rate_limits"]["buckets"][0]["capacity"] == 5
    assert data["server"]["listen"] == "127.0.0.1:8080"
    for secret in ("hunter2", "s3cret", "collector", "pa55"):
        assert secret not in repr(data)


def test_check_prints_the_effective_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_SIDECAR__UPSTREAM__TIMEOUT_SECONDS", "7")
    path = tmp_path / "sidecar.yaml"
    path.write_text("upstream: {url: http://127.0.0.1:9/mcp, headers: {X-Key: {value: hunter2}}}\n"
                    "auth: {mode: off}\npolicy: {engine: off}\n")
    status, out, err = run(capsys, "config", "check", str(path))
    assert (status, err) == (0, "")
    printed = yaml.safe_load(out)
    assert printed["upstream"]["timeout_seconds"] == 7
    assert printed["upstream"]["headers"]["X-Key"]["value"] == MASK
    assert printed["server"]["workers"] == 1 and "hunter2" not in out


def test_check_reports_every_problem_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text("upstream: {url: http://127.0.0.1:9/mcp}\nauth: {mode: off}\nserver: {listen: nowhere, "
                    "colour: blue}\n")
    status, out, err = run(capsys, "config", "check", str(path))
    assert (status, out) == (2, "")
    assert err.splitlines()[0] == "mcp-sidecar: invalid configuration:"
    assert "  server.listen: expected HOST:PORT, got 'nowhere'" in err.splitlines()
    assert any(line.startswith("  server.colour: Extra inputs are not permitted") for line in err.splitlines())


def test_reference_prints_the_generated_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "config", "reference") == (0, render(), "")
