from __future__ import annotations

import pytest

from proxy.config import (
    ConfigError,
    HttpUpstreamConfig,
    SseUpstreamConfig,
    StdioUpstreamConfig,
    load_config,
)
from proxy.config.upstream import KIND_KEYS
from proxy.upstream import create_upstream, upstream_classes
from proxy.upstream.http import HttpUpstream
from proxy.upstream.process import child_environment
from proxy.upstream.sse import SseUpstream
from proxy.upstream.stdio import StdioUpstream


def upstream(**values: object):
    overrides = {f"upstream.{key}": value for key, value in values.items()}
    return load_config(None, env={}, overrides={**overrides, "auth.mode": "off"}).upstream


def test_a_command_string_is_split_like_a_shell_would() -> None:
    config = upstream(command="npx -y 'some server' --flag")
    assert config.command == ("npx", "-y", "some server", "--flag") and config.kind == "stdio"


def test_exactly_one_upstream_kind() -> None:
    with pytest.raises(ConfigError, match=r"exactly one.*got \['upstream\.url', 'upstream\.command'\]"):
        upstream(url="http://a/mcp", command="x")
    with pytest.raises(ConfigError, match=r"exactly one.*got none"):
        upstream(name="nothing-else")
    assert upstream(sse_url="http://a/sse").kind == "sse"


def test_the_key_given_chooses_the_config_class_and_the_upstream_class() -> None:
    chosen = {"url": "http://a/mcp", "command": "server --stdio", "sse_url": "http://a/sse"}
    classes = {"url": (HttpUpstreamConfig, HttpUpstream), "command": (StdioUpstreamConfig, StdioUpstream),
               "sse_url": (SseUpstreamConfig, SseUpstream)}
    for key, value in chosen.items():
        config = load_config(None, env={}, overrides={f"upstream.{key}": value, "auth.mode": "off"})
        assert (type(config.upstream), type(create_upstream(config))) == classes[key]
    assert set(upstream_classes()) == {cls for _, cls in KIND_KEYS.values()}  # a new kind cannot miss its factory


def test_an_explicit_kind_is_accepted_and_must_agree_with_the_key() -> None:
    assert upstream(kind="stdio", command="x").command == ("x",)
    with pytest.raises(ConfigError, match=r"upstream\.kind is 'stdio' but upstream\.url is set"):
        upstream(kind="stdio", url="http://a/mcp")
    with pytest.raises(ConfigError, match=r"upstream\.kind must be one of http, stdio, sse"):
        upstream(kind="websocket", url="http://a/mcp")
    with pytest.raises(ConfigError, match=r"^upstream\.command: Field required"):
        upstream(kind="stdio")


def test_keys_of_another_kind_still_load_as_before_the_split() -> None:
    """Deployed configs carry keys their kind never used (a template's env, pool sizes beside a command)."""
    http = upstream(url="http://a/mcp", env={"A": "1"}, cwd=None, shutdown_grace_seconds=1, max_sessions=4)
    assert http.max_sessions == 4 and not hasattr(http, "env")
    stdio = upstream(command="x", max_connections=8, headers={}, idle_connection_seconds=2, queue_limit=9)
    assert stdio.queue_limit == 9 and not hasattr(stdio, "max_connections")
    with pytest.raises(ConfigError, match=r"upstream\.timeout_secs: Extra inputs"):  # a typo is still an error
        upstream(command="x", timeout_secs=3)


def test_errors_name_the_key_as_written_without_the_kind() -> None:
    with pytest.raises(ConfigError) as caught:
        upstream(command="x", cwd="/nonexistent/dir", max_event_bytes=0)
    assert sorted(caught.value.problems) == [
        "upstream.cwd: '/nonexistent/dir' is not a directory",
        "upstream.max_event_bytes: Input should be greater than 0",
    ]


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
    sse = load_config(None, env={"MCP_SIDECAR__UPSTREAM__SSE_URL": "http://a/sse", "MCP_SIDECAR__AUTH__MODE": "off",
                                 "MCP_SIDECAR__UPSTREAM__RESTART_BACKOFF_SECONDS": "0.5"})
    assert sse.upstream.kind == "sse" and sse.upstream.restart_backoff_seconds == 0.5


def test_a_child_inherits_only_the_basics_plus_what_is_configured() -> None:
    parent = {"PATH": "/bin", "HOME": "/home/x", "LANG": "C.UTF-8", "AWS_SECRET_ACCESS_KEY": "s", "TOKEN": "t"}
    assert child_environment({"API_URL": "u"}, parent) == {"PATH": "/bin", "HOME": "/home/x", "LANG": "C.UTF-8",
                                                           "API_URL": "u"}
