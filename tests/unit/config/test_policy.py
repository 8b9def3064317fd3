"""The policy section: engine choice (YAML's bare off), OPA's URL, load-error behaviour."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from proxy.config.policy import PolicyConfig


def test_defaults_load_the_policies_directory_with_rego() -> None:
    config = PolicyConfig()
    assert (config.engine, config.directory, config.reload, config.on_load_error) == ("rego", "policies", True, "exit")


def test_yaml_bare_off_means_the_engine_is_off() -> None:
    assert yaml.safe_load("engine: off") == {"engine": False}
    assert PolicyConfig.model_validate(yaml.safe_load("engine: off")).engine == "off"
    assert PolicyConfig(engine="off").engine == "off"


def test_true_is_not_an_engine() -> None:
    with pytest.raises(ValidationError):
        PolicyConfig.model_validate({"engine": True})


def test_unknown_engines_and_load_error_modes_are_refused() -> None:
    with pytest.raises(ValidationError):
        PolicyConfig(engine="cedar")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        PolicyConfig(on_load_error="allow")  # type: ignore[arg-type]


@pytest.mark.parametrize("url", [None, "", "127.0.0.1:8181", "grpc://opa:9191"])
def test_opa_needs_an_http_url(url: str | None) -> None:
    with pytest.raises(ValidationError, match=r"policy\.opa_url"):
        PolicyConfig(engine="opa", opa_url=url)


def test_opa_with_a_url_loads() -> None:
    config = PolicyConfig(engine="opa", opa_url="https://opa:8181")
    assert config.opa_url == "https://opa:8181" and config.opa_timeout_seconds == 0.5


def test_intervals_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        PolicyConfig(reload_interval_seconds=0)
    with pytest.raises(ValidationError):
        PolicyConfig(opa_timeout_seconds=0)
