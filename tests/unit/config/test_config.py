from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config


def test_defaults_need_only_an_upstream_and_an_auth_decision() -> None:
    config = load_config(None, env={}, overrides={"upstream.url": "http://127.0.0.1:9000/mcp", "auth.mode": "off"})
    assert config.server.listen == "127.0.0.1:8080"
    assert config.server.resource_url == "http://127.0.0.1:8080/mcp"
    assert config.audit.log_arguments is False


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("upstream:\n  url: http://a/mcp\n  timeout_seconds: 5\nserver:\n  listen: 0.0.0.0:1\n"
                    "auth:\n  mode: off\n")
    env = {"MCP_SIDECAR__UPSTREAM__TIMEOUT_SECONDS": "7", "MCP_SIDECAR__SERVER__ALLOWED_ORIGINS": "[a, b]"}
    config = load_config(path, env=env, overrides={"server.listen": "127.0.0.1:2"})
    assert config.upstream.timeout_seconds == 7
    assert config.server.allowed_origins == ("a", "b")
    assert config.server.listen == "127.0.0.1:2"


def test_an_environment_value_ending_in_a_colon_stays_a_string() -> None:
    """Key prefixes look like `app:rl:`, which YAML alone would read as a one-key mapping."""
    env = {"MCP_SIDECAR__RATE_LIMITS__KEY_PREFIX": "app:rl:", "MCP_SIDECAR__APPROVAL__KEY_PREFIX": "app:approval:",
           "MCP_SIDECAR__CACHE__TOOLS": "{echo: {ttl_seconds: 5}}"}
    config = load_config(None, env=env, overrides={"upstream.url": "http://a/mcp", "auth.mode": "off"})
    assert config.rate_limits.key_prefix == "app:rl:" and config.approval.key_prefix == "app:approval:"
    assert config.cache.tools["echo"].ttl_seconds == 5  # a mapping written as one still is one


def test_every_problem_is_reported_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={}, overrides={"upstream.url": "x", "server.workers": 0, "audit.sink": "file"})
    problems = "\n".join(caught.value.problems)
    assert "server.workers" in problems and "audit" in problems and "upstream" in problems


def test_unreadable_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env={})


def test_config_is_frozen() -> None:
    config = load_config(None, env={}, overrides={"upstream.url": "http://a/mcp", "auth.mode": "off"})
    with pytest.raises(ValueError, match="frozen"):
        config.server.listen = "x"  # type: ignore[misc]


def test_per_tool_timeouts() -> None:
    config = load_config(None, env={}, overrides={"upstream.url": "http://a/mcp", "upstream.tool_timeouts": {"s": 1},
                                                  "auth.mode": "off"})
    assert config.upstream.timeout_for("s") == 1
    assert config.upstream.timeout_for("other") == 60
