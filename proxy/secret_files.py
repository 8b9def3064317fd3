"""A secret kept in a file that may be replaced on disk (a rotated Kubernetes secret), re-read only when it changed.

Kubernetes updates a mounted secret by swapping the `..data` symlink to a new directory, so the path's target
changes inode rather than being rewritten in place. `os.stat` follows the link, so comparing (device, inode, mtime,
size) catches both that and a plain rewrite. The file is stat-ed at most once per `check_interval` seconds, so a busy
sidecar does not pay a system call per request; a rotation is seen within that interval.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("proxy.secret_files")


class SecretFile:
    def __init__(self, path: str, *, check_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.check_interval = check_interval
        self.clock = clock
        self._identity: tuple[int, int, int, int] | None = None
        self._content = b""
        self._checked_at = float("-inf")
        self.version = 0  # bumped on every change, so callers can cache what they derive from the content

    def read_bytes(self) -> bytes:
        """The current content. A file that vanished keeps its last content (a rotation in progress)."""
        now = self.clock()
        if now - self._checked_at < self.check_interval:
            return self._content
        self._checked_at = now
        try:
            info = os.stat(self.path)
            identity = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
            if identity != self._identity:
                with open(self.path, "rb") as handle:
                    self._content = handle.read()
                self._identity = identity
                self.version += 1
                if self.version > 1:
                    log.info("secret_file.reloaded", path=self.path)
        except OSError as exc:
            if self._identity is None:
                raise
            log.warning("secret_file.unreadable", path=self.path, error=exc.strerror)
        return self._content

    def read_text(self) -> str:
        """The content as text without its trailing newline (secrets are often written with one)."""
        return self.read_bytes().decode().rstrip("\r\n")
