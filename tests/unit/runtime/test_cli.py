"""The serve flags choose the upstream kind as the config keys do."""

from __future__ import annotations

import pytest

from proxy.config import ConfigError, load_config
from proxy.runtime.cli import _overrides, _parser


def config_from(*flags: str):
    args = _parser().parse_args(["serve", *flags])
    return load_config(None, env={"MCP_SIDECAR__AUTH__MODE": "off"}, overrides=_overrides(args)).upstream


def test_each_upstream_flag_chooses_its_kind() -> None:
    assert config_from("--upstream", "http://a/mcp").url == "http://a/mcp"
    assert config_from("--upstream-command", "uvx mcp-server-time").command == ("uvx", "mcp-server-time")
    assert config_from("--upstream-sse", "http://a/sse").kind == "sse"


def test_two_upstream_flags_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="--upstream-sse URL"):
        config_from("--upstream", "http://a/mcp", "--upstream-sse", "http://a/sse")
