"""Tool pinning: the reviewed lock file and what serving does with a tool that drifted from it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from proxy.config.base import Section


class ToolsConfig(Section):
    # A lock written by `mcp-sidecar tools lock`; unset: no pinning. A tool whose live definition differs from the
    # lock, or that is not in it, is hidden from tools/list and its calls are refused (on_drift: block), wait for
    # an approval that shows the drift (approve), or pass and are logged (warn).
    lock_file: str | None = None
    on_drift: Literal["block", "approve", "warn"] = "block"
    recheck_seconds: float = Field(default=60.0, gt=0)  # the live definitions are also re-read this often
