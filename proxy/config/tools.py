"""Tool pinning: the reviewed lock file and what serving does with a tool that drifted from it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from proxy.config.base import Section


class ToolsConfig(Section):
    lock_file: str | None = None
    """A lock written by `mcp-sidecar tools lock` (YAML, or JSON for a `.json` path). Unset: no pinning. One that does
    not parse, or whose hashes do not match its own definitions, stops startup with its path and the reason."""
    on_drift: Literal["block", "approve", "warn"] = "block"
    """A tool whose live definition differs from the lock, or that the lock lacks: `block` hides it from tools/list
    and refuses its calls with a tool result naming the drift; `approve` lists it and sends each call to an approver,
    who sees the drift; `warn` lets it pass and logs it."""
    recheck_seconds: float = Field(default=60.0, gt=0)
    """The live definitions are re-read this often, besides at start and on `notifications/tools/list_changed`; a
    changed lock file is re-read then too (one that no longer loads leaves the last good lock in force)."""
