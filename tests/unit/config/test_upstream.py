from __future__ import annotations

import pytest

from proxy.config import ConfigError, load_config
from proxy.upstream.process import child_environment


def upstream(**values: object):
    overrides = {f"upstream.{key}": value for key, value in values.items()}
    return load_config(None, env={}, overrides={**overrides, "auth.mode": "off"}).upstream


def test_a_command_string_is_split_like_a_shell_would() -> None:
    config = upstream(command="npx -y 'some server' --flag")
    assert config.command == ("npx", "-y", "some server", "--flag") and config.kind == "stdio"


def test_exactly_one_upstream_kind() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        upstream(url="http://a/mcp", command="x")
    with pytest.raises(ConfigError, match="exactly one"):
        upstream(name="nothing-else")
    assert upstream(sse_url="http://a/sse").kind == "sse"


def test_bad_settings_fail_at_load_time(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        upstream(command="x", cwd=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="restart_backoff_max_seconds"):
        upstream(command="x", restart_backoff_seconds=5, restart_backoff_max_seconds=1)
    with pytest.raises(ConfigError, match="http"):
        upstream(sse_url="ftp://a/sse")


def test_the_environment_variable_form_works() -> None:
    config = load_config(None, env={"MCP_SIDECAR__UPSTREAM__COMMAND": "node server.js stdio",
                                    "MCP_SIDECAR__AUTH__MODE": "off"})
    assert config.upstream.command == ("node", "server.js", "stdio")


def test_a_child_inherits_only_the_basics_plus_what_is_configured() -> None:
    parent = {"PATH": "/bin", "HOME": "/home/x", "LANG": "C.UTF-8", "AWS_SECRET_ACCESS_KEY": "s", "TOKEN": "t"}
    assert child_environment({"API_URL": "u"}, parent) == {"PATH": "/bin", "HOME": "/home/x", "LANG": "C.UTF-8",
                                                           "API_URL": "u"}
