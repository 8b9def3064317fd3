"""TLS contexts from files: the settings they carry, and rebuilding when the files change (no sockets)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from proxy.net import tls as net_tls
from proxy.net.tls import ReloadingContext, ServerTls, client_context, server_context
from tests.tls_kit import Pki, copy_over, encrypted, replace


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path, "test")


def test_the_server_context_needs_tls_1_2_and_with_a_client_ca_a_client_certificate(pki: Pki) -> None:
    cert_file, key_file = pki.issue("server")
    plain = server_context(cert_file, key_file)
    assert plain.minimum_version == ssl.TLSVersion.TLSv1_2 and plain.verify_mode == ssl.CERT_NONE
    mutual = server_context(cert_file, key_file, pki.ca_file)
    assert mutual.verify_mode == ssl.CERT_REQUIRED


def test_the_client_context_verifies_the_origin_and_its_name(pki: Pki) -> None:
    context = client_context(pki.ca_file)
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_the_listening_context_switches_each_handshake_to_the_newest(pki: Pki) -> None:
    tls = ServerTls(*pki.issue("server"))
    assert tls.listening.sni_callback is not None


def test_a_changed_file_gives_a_new_context_after_the_interval_and_a_failed_build_keeps_the_last(
        pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    cert_file, key_file = pki.issue("server")
    built: list[str] = []

    def build() -> ssl.SSLContext:
        built.append("build")
        return server_context(cert_file, key_file)

    contexts = ReloadingContext(build, [cert_file, key_file])
    first = contexts.current()
    monkeypatch.setattr(net_tls, "CHECK_SECONDS", 0.0)
    assert contexts.current() is first and built == ["build"]  # unchanged files: nothing rebuilt
    copy_over(pki.issue("other")[1], key_file)  # a key that does not match
    assert contexts.current() is first and built == ["build"] * 2
    assert contexts.current() is first and built == ["build"] * 2  # the same broken files: not tried again
    pki.issue("server")
    assert contexts.current() is not first and built == ["build"] * 3


def test_an_encrypted_key_on_reload_is_refused_not_prompted_for(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    cert_file, key_file = pki.issue("server")
    contexts = ReloadingContext(lambda: server_context(cert_file, key_file), [cert_file, key_file])
    first = contexts.current()
    monkeypatch.setattr(net_tls, "CHECK_SECONDS", 0.0)
    replace(Path(key_file), encrypted(Path(key_file).read_bytes()))
    assert contexts.current() is first  # the last good context, and no pass phrase asked on the terminal
