"""TLS sections: HTTPS on the MCP listener (server.tls) and how the sidecar talks TLS to its upstream
(upstream.tls). Files are checked to load at startup; the sidecar re-reads them when they change on disk."""

from __future__ import annotations

import ssl
from collections.abc import Callable

from pydantic import model_validator

from proxy.config.base import Section


class ServerTlsConfig(Section):
    """HTTPS on the MCP listener, TLS 1.2 at least. A certificate replaced on disk serves the connections that open
    from then on (checked at most once a second); open connections keep theirs. The admin listener stays plain
    HTTP: it listens on loopback for the kubelet's probes and the local scraper, which show no client certificate."""

    cert_file: str
    """PEM: the certificate, then its intermediates."""
    key_file: str
    """PEM: its private key, unencrypted."""
    client_ca_file: str | None = None
    """Mutual TLS: a client must show a certificate signed by one of these CAs (PEM). Unset: none asked for."""

    @model_validator(mode="after")
    def _loads(self) -> ServerTlsConfig:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        _check(lambda: context.load_cert_chain(self.cert_file, self.key_file, no_password),
               "cert_file and key_file must be a PEM certificate (chain) and its unencrypted private key")
        if self.client_ca_file is not None:
            _check(lambda: context.load_verify_locations(cafile=self.client_ca_file),
                   "client_ca_file must hold PEM CA certificates")
        return self


class UpstreamTlsConfig(Section):
    """For an https upstream: the CAs to verify it against, and the certificate to show it if it asks (mutual TLS).
    Re-read when the files change on disk, for the connections opened from then on."""

    ca_file: str | None = None
    """PEM CA bundle trusted instead of the system's. Unset: the system's CAs."""
    cert_file: str | None = None
    """PEM client certificate (then its intermediates), shown to an upstream that asks for one. Set with key_file."""
    key_file: str | None = None
    """Its private key, unencrypted."""

    @model_validator(mode="after")
    def _loads(self) -> UpstreamTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both cert_file and key_file, or neither")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ca_file is not None:
            _check(lambda: context.load_verify_locations(cafile=self.ca_file), "ca_file must hold PEM CA certificates")
        if self.cert_file is not None:
            _check(lambda: context.load_cert_chain(self.cert_file, self.key_file, no_password),
                   "cert_file and key_file must be a PEM certificate (chain) and its unencrypted private key")
        return self


def no_password() -> bytes:
    """The password callback of every `load_cert_chain`: an encrypted key fails to load, rather than OpenSSL asking
    for its pass phrase on the terminal (which would hang startup, or the event loop during a reload)."""
    raise ValueError("the private key is encrypted")


def _check(load: Callable[[], None], expected: str) -> None:
    try:
        load()
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        raise ValueError(f"{expected}: {getattr(error, 'strerror', None) or error}") from None
