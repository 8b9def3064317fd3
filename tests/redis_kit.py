"""Redis for tests: the shared server on 127.0.0.1:6379 (unique key prefixes, never flushed), or a private
redis-server subprocess on a free port that a test may stop and start again."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.kit import free_port, stop_process, wait_for_port

SHARED_URL = "redis://127.0.0.1:6379/0"


def unique_prefix(label: str = "t") -> str:
    """A key prefix no other test run uses; keys expire on their own once their buckets are full."""
    return f"test:{label}:{uuid.uuid4().hex[:12]}:"


def shared_redis_available() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


needs_shared_redis = pytest.mark.skipif(not shared_redis_available(), reason="no Redis on 127.0.0.1:6379")
needs_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


class PrivateRedis:
    """A redis-server of our own, for failure tests: stop() and start() keep the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, timeout=10, process=self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            stop_process(server.process)
