"""The TLS sections: files that must load, pairs that must match, and the scheme they give the sidecar's URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.config import ConfigError, load_config
from tests.tls_kit import Pki, encrypted


def configured(**dotted: Any) -> Any:
    return load_config(None, env={}, overrides={"upstream.url": "https://127.0.0.1:9/mcp", "auth.mode": "off",
                                                **dotted})


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path, "test")


def test_server_tls_makes_the_resource_url_https(pki: Pki) -> None:
    cert_file, key_file = pki.issue("server")
    config = configured(**{"server.tls": {"cert_file": cert_file, "key_file": key_file}})
    assert config.server.resource_url == "https://127.0.0.1:8080/mcp"
    assert config.server.tls is not None and config.server.tls.client_ca_file is None


def test_the_request_deadlines_have_defaults_and_must_be_positive() -> None:
    config = configured()
    assert (config.server.request_head_timeout_seconds, config.server.request_body_timeout_seconds) == (10.0, 30.0)
    with pytest.raises(ConfigError, match=r"server\.request_body_timeout_seconds"):
        configured(**{"server.request_body_timeout_seconds": 0})


@pytest.mark.parametrize("broken", ["missing", "mismatched", "not-pem", "encrypted"])
def test_a_server_pair_that_does_not_load_fails_at_startup_with_its_path(pki: Pki, tmp_path: Path,
                                                                         broken: str) -> None:
    cert_file, key_file = pki.issue("server")
    if broken == "missing":
        key_file = str(tmp_path / "absent.key")
    elif broken == "mismatched":
        key_file = pki.issue("other")[1]
    elif broken == "encrypted":  # refused, not prompted for on the terminal
        Path(key_file).write_bytes(encrypted(Path(key_file).read_bytes()))
    else:
        Path(cert_file).write_text("not a certificate")
    said = r"server\.tls: .*cert_file and key_file must be"
    if broken == "encrypted":
        said += ".*: the private key is encrypted"
    with pytest.raises(ConfigError, match=said):
        configured(**{"server.tls": {"cert_file": cert_file, "key_file": key_file}})


def test_a_client_ca_file_that_is_no_ca_bundle_is_refused(pki: Pki, tmp_path: Path) -> None:
    cert_file, key_file = pki.issue("server")
    bogus = tmp_path / "ca.pem"
    bogus.write_text("nothing here")
    with pytest.raises(ConfigError, match="client_ca_file must hold PEM CA certificates"):
        configured(**{"server.tls": {"cert_file": cert_file, "key_file": key_file, "client_ca_file": str(bogus)}})


def test_upstream_tls_needs_both_halves_of_a_client_certificate(pki: Pki) -> None:
    cert_file, key_file = pki.issue("client")
    with pytest.raises(ConfigError, match=r"upstream\.tls: set both cert_file and key_file"):
        configured(**{"upstream.tls": {"cert_file": cert_file}})
    config = configured(**{"upstream.tls": {"ca_file": pki.ca_file, "cert_file": cert_file, "key_file": key_file}})
    assert config.upstream.tls.ca_file == pki.ca_file


def test_upstream_tls_defaults_to_the_system_cas() -> None:
    tls = configured().upstream.tls
    assert (tls.ca_file, tls.cert_file, tls.key_file) == (None, None, None)
