"""Build the configured engine: the in-process Rego bundle or a remote OPA server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from proxy.config import PolicyConfig
from proxy.policy.engine import Engine, PolicyLoadError
from proxy.policy.loader import PolicyLoader, RegoEngine
from proxy.policy.rego import PolicyCompileError

log = structlog.get_logger("proxy.policy")


def build_engine(config: PolicyConfig, directory: Path, label: str,
                 on_failure: Callable[[], None] | None = None) -> Engine:
    if config.engine == "opa":
        from proxy.policy.opa import OpaEngine

        assert config.opa_url is not None
        return OpaEngine(config.opa_url, config.opa_timeout_seconds)
    interval = config.reload_interval_seconds if config.reload else None
    loader = PolicyLoader(directory, interval, label=label, on_failure=on_failure)
    try:
        loader.load_initial()
    except (PolicyCompileError, OSError, UnicodeDecodeError) as exc:
        problems = exc.problems if isinstance(exc, PolicyCompileError) else [str(exc)]
        if config.on_load_error == "exit":
            raise PolicyLoadError(directory, problems) from None
        loader.record_startup_failure(problems)  # start anyway; every call is denied until a reload succeeds
    return RegoEngine(loader)
