"""The auth and upstream-credential settings fail at load time with dotted paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config
from tests.idp import new_key

UPSTREAM = {"upstream.url": "http://127.0.0.1:9/mcp"}


def problems(env: dict[str, str] | None = None, **dotted: object) -> list[str]:
    with pytest.raises(ConfigError) as failed:
        load_config(None, env=env or {}, overrides={**UPSTREAM, **{k.replace("__", "."): v for k, v in dotted.items()}})
    return failed.value.problems


@pytest.fixture(scope="module")
def pem_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("keys") / "idp.pem"
    path.write_bytes(new_key("k").public_pem)
    return str(path)


def test_required_by_default_and_no_key_source_fails_startup() -> None:
    assert problems() == [
        "auth: mode 'required' needs exactly one key source: auth.jwks_url, auth.public_key_files (PEM) or "
        "auth.hmac_secret_file; or set auth.mode: off"
    ]


def test_issuers_required(pem_file: str) -> None:
    assert problems(auth__public_key_files=[pem_file]) == [
        "auth: mode 'required' needs auth.issuers (the token issuers to accept)"]


def test_yaml_off_means_off(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text("upstream: {url: 'http://127.0.0.1:9/mcp'}\nauth:\n  mode: off\n")
    assert load_config(path, env={}).auth.mode == "off"
    assert load_config(None, env={"MCP_SIDECAR__AUTH__MODE": "off"}, overrides=UPSTREAM).auth.mode == "off"


def test_algorithm_families_never_mix(pem_file: str, tmp_path: Path) -> None:
    assert problems(auth__public_key_files=[pem_file], auth__issuers="x", auth__algorithms=["RS256", "HS256"])[0] \
        .startswith("auth.algorithms: ['HS256'] cannot be used with RSA/EC/EdDSA keys")
    secret = tmp_path / "secret"
    secret.write_text("s" * 40 + "\n")
    assert problems(auth__hmac_secret_file=str(secret), auth__issuers="x", auth__algorithms=["RS256"])[0] \
        .startswith("auth.algorithms: ['RS256'] cannot be used with an HMAC secret")
    config = load_config(None, env={}, overrides={**UPSTREAM, "auth.hmac_secret_file": str(secret),
                                                  "auth.issuers": "x"})
    assert config.auth.allowed_algorithms == ("HS256",)
    assert config.auth.issuers == ("x",)


def test_key_files_are_checked(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("tiny\n")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    assert problems(auth__hmac_secret_file=str(short), auth__issuers="x") == [
        f"auth.hmac_secret_file: {short}: an HMAC secret needs at least 32 bytes"]
    assert problems(auth__public_key_files=[str(not_pem)], auth__issuers="x") == [
        f"auth.public_key_files: {not_pem} is not a PEM public key"]
    assert problems(auth__jwks_url="file:///etc/passwd", auth__issuers="x") == [
        "auth.jwks_url: must be an http(s) URL"]


def test_two_key_sources_are_refused(pem_file: str) -> None:
    assert problems(auth__public_key_files=[pem_file], auth__jwks_url="https://idp/certs", auth__issuers="x")[0] \
        .startswith("auth: mode 'required' needs exactly one key source")


def test_upstream_header_sources() -> None:
    off = {"auth.mode": "off"}
    assert problems(auth__mode="off", upstream__headers={"X-Key": {"value": "a", "env": "B"}}) == [
        "upstream.headers.X-Key: set exactly one of value, env, file"]
    assert problems(auth__mode="off", upstream__headers={"X-Key": {"env": "NOT_SET_ANYWHERE"}}) == [
        "upstream.headers.X-Key: environment variable NOT_SET_ANYWHERE is not set"]
    assert problems(auth__mode="off", upstream__headers={"Mcp-Session-Id": {"value": "x"}}) == [
        "upstream.headers: 'Mcp-Session-Id' is set by the sidecar itself and cannot be configured"]
    assert problems(auth__mode="off", upstream__headers={"Bad Name": {"value": "x"}}) == [
        "upstream.headers: 'Bad Name' is not a valid header name"]
    config = load_config(None, env={}, overrides={**UPSTREAM, **off, "upstream.headers": {"X-Key": {"value": "a"}}})
    assert config.upstream.headers["X-Key"].value == "a"
