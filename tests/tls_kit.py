"""Test kit for TLS: trustme certificate authorities and their leaves written as PEM files, client contexts, and
TLS connections whose wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

from tests.raw_http import WAIT


@dataclass
class Pki:
    """One certificate authority, its PEM file, and leaves it issues into `directory`."""

    ca: trustme.CA
    ca_file: str
    directory: Path

    @classmethod
    def create(cls, directory: Path, name: str) -> Pki:
        ca = trustme.CA(organization_name=name)
        ca_file = directory / f"{name}-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        return cls(ca, str(ca_file), directory)

    def issue(self, stem: str, *names: str) -> tuple[str, str]:
        """A leaf for `names` (default 127.0.0.1): its certificate chain file and key file, replaced atomically
        if they exist (as a rotation does)."""
        leaf = self.ca.issue_cert(*(names or ("127.0.0.1",)))
        cert_file, key_file = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        replace(cert_file, b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        replace(key_file, leaf.private_key_pem.bytes())
        return str(cert_file), str(key_file)

    def client(self, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
        """A client context trusting this CA, showing `cert` (cert file, key file) when given."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if cert is not None:
            context.load_cert_chain(*cert)
        return context


def replace(path: Path, data: bytes) -> None:
    """Write `data` to `path` the way rotations do: a new file renamed over the old one."""
    fresh = path.with_suffix(path.suffix + ".new")
    fresh.write_bytes(data)
    os.replace(fresh, path)


def encrypted(key_pem: bytes) -> bytes:
    """The private key of `key_pem`, encrypted with a pass phrase."""
    key = serialization.load_pem_private_key(key_pem, None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(b"secret"))


def copy_over(source: str, target: str) -> None:
    """Replace `target` with a copy of `source`, as one file of a rotation."""
    replace(Path(target), Path(source).read_bytes())


def der_of(cert_file: str) -> bytes:
    """The first certificate of a PEM chain file, DER-encoded (what `getpeercert(True)` returns)."""
    pem = Path(cert_file).read_text()
    return ssl.PEM_cert_to_DER_cert(pem[: pem.index("-----END CERTIFICATE-----") + 25])


async def connect_tls(port: int, context: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"), WAIT)


def peer_certificate(writer: asyncio.StreamWriter) -> bytes:
    return writer.get_extra_info("ssl_object").getpeercert(binary_form=True)


@contextlib.asynccontextmanager
async def tls_front(target_port: int, context: ssl.SSLContext) -> AsyncIterator[int]:
    """A TLS terminator in front of a plain loopback server (each connection piped both ways); yields its port."""
    writers: list[asyncio.StreamWriter] = []

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        writers.append(client_writer)
        try:
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        writers.append(target_writer)
        await asyncio.gather(_pipe(client_reader, target_writer), _pipe(target_reader, client_writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
