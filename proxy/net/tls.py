"""TLS contexts from PEM files, rebuilt when the files change on disk: the listener's (HTTPS, optionally mutual)
and the upstream client's (a CA bundle, optionally a client certificate).

A rotated certificate (a Kubernetes secret, cert-manager, an ACME client replacing the files) is picked up without a
restart: a context is asked for as a connection opens, and at most every CHECK_SECONDS that asks the files' stamps
(inode, size, mtime); when they changed, a fresh context is built for the connections that open from then on. Open
connections keep the context they were made with. A build that fails (a key written before its certificate) keeps
the last good context and is tried again once the files change once more.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Sequence

import structlog

from proxy.config.tls import no_password

log = structlog.get_logger("proxy.net.tls")

CHECK_SECONDS = 1.0
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2

Stamp = tuple[tuple[int, int, int] | None, ...]


def server_context(cert_file: str, key_file: str, client_ca_file: str | None = None) -> ssl.SSLContext:
    """HTTPS for the listener, TLS 1.2 at least; with `client_ca_file`, a client must show a certificate it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.load_cert_chain(cert_file, key_file, no_password)
    if client_ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


def client_context(ca_file: str | None = None, cert_file: str | None = None,
                   key_file: str | None = None) -> ssl.SSLContext:
    """The upstream client's: verifies the origin against `ca_file` (else the system's CAs) and its host name, and
    shows the client certificate, when given."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = MINIMUM_VERSION
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file, no_password)
    return context


def reloading_client_context(ca_file: str | None = None, cert_file: str | None = None,
                             key_file: str | None = None) -> ReloadingContext:
    """`client_context` of these files, rebuilt when they change."""
    files = [path for path in (ca_file, cert_file, key_file) if path is not None]
    return ReloadingContext(lambda: client_context(ca_file, cert_file, key_file), files)


class ReloadingContext:
    """The newest context `build` made from `files`. Raises at construction if the files do not load."""

    def __init__(self, build: Callable[[], ssl.SSLContext], files: Sequence[str]) -> None:
        self._build = build
        self._files = tuple(files)
        self._stamp = self._stamps()  # read before the build: a change during it is seen by the next check
        self.context = build()
        self._failed: Stamp | None = None  # the files as they were when a build last failed
        self._checked = time.monotonic()

    def current(self) -> ssl.SSLContext:
        """The context for a connection opening now (the files are checked at most every CHECK_SECONDS)."""
        now = time.monotonic()
        if now - self._checked >= CHECK_SECONDS:
            self._checked = now
            self._reload_if_changed()
        return self.context

    def _reload_if_changed(self) -> None:
        stamp = self._stamps()
        if stamp == self._stamp or stamp == self._failed:
            return
        try:
            context = self._build()
        except (OSError, ssl.SSLError, ValueError) as error:
            self._failed = stamp
            log.warning("tls.reload_failed", files=self._files, error=str(error))
            return
        self._stamp, self.context = stamp, context
        log.info("tls.reloaded", files=self._files)

    def _stamps(self) -> Stamp:
        return tuple(_stamp(path) for path in self._files)


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        status = os.stat(path)  # follows links: a secret volume swaps its ..data link, which changes the inode
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


class ServerTls:
    """The listener's TLS. Its listening context stays the one the server was created with (asyncio takes it
    once); each handshake switches to the newest context in the SNI callback, which OpenSSL calls for every
    ClientHello, with or without a server name."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str | None = None) -> None:
        files = [cert_file, key_file, *([client_ca_file] if client_ca_file else [])]
        self._contexts = ReloadingContext(lambda: server_context(cert_file, key_file, client_ca_file), files)
        self.listening = self._contexts.context
        self.listening.sni_callback = self._newest

    def _newest(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        try:
            newest = self._contexts.current()
            if newest is not context:
                connection.context = newest
        except Exception:  # an exception here would fail the handshake: the last context serves instead
            log.exception("tls.context_switch_failed")
