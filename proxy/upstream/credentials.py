"""The sidecar's own credentials for the upstream (never the caller's token): headers from config, env or files."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from proxy.config import UpstreamHeader
from proxy.secret_files import SecretFile


class UpstreamCredentials:
    """Resolves the configured headers; file-backed ones follow rotations on disk without a restart.

    Values from config and environment are fixed at startup. Each request takes a snapshot when it starts,
    so a rotation never changes a request already in flight.
    """

    def __init__(self, headers: Mapping[str, UpstreamHeader], *, check_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fixed: dict[str, str] = {}
        self._files: dict[str, tuple[str, SecretFile]] = {}
        for name, source in headers.items():
            if source.file is not None:
                self._files[name] = (source.prefix, SecretFile(source.file, check_interval=check_interval,
                                                               clock=clock))
            else:
                value = source.value if source.value is not None else os.environ[source.env or ""]
                self._fixed[name] = source.prefix + value

    def __bool__(self) -> bool:
        return bool(self._fixed or self._files)

    def headers(self) -> dict[str, str]:
        if not self._files:
            return self._fixed
        current = dict(self._fixed)
        for name, (prefix, secret) in self._files.items():
            current[name] = prefix + secret.read_text()
        return current
