"""Pinning while serving: the reviewed lock, the live tools judged against it, and the drifts seen so far.

Built once at startup from `tools.lock_file` (a lock that does not load stops startup: LockFileError) and shared
by the pinning stage and the admin app. It holds no HTTP and no clock: the stage feeds it the live definitions
(at start, on `notifications/tools/list_changed`, every `tools.recheck_seconds`) and asks it about single tools.
A lock file that changes on disk (another replica's review, a ConfigMap swap) is re-read on the period; one that
no longer loads leaves the last good lock in force and says so under /readyz.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.tools.drift import Drift, Status, compare
from proxy.tools.pinning import LockFileError, Pinned, Snapshot, read_lock

MODES = ("block", "approve", "warn")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a rewritten file apart: the resolved target's inode, size and modification time."""
    try:
        stat = os.stat(path)  # follows symlinks, so a ConfigMap's swapped ..data target is seen
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


@dataclass(slots=True)
class ToolPins:
    path: Path
    mode: str  # block | approve | warn
    lock: Snapshot
    stamp: tuple[int, int, int] | None = None
    drifts: dict[str, Drift] = field(default_factory=dict)  # tool name -> its drift, from the last live view
    reported: set[tuple[str, str, str | None]] = field(default_factory=set)  # (tool, status, live hash) announced
    reload_error: str | None = None

    @classmethod
    def load(cls, path: Path, mode: str) -> ToolPins:
        """Raises LockFileError (path and reason) when the lock cannot be used."""
        if mode not in MODES:
            raise ValueError(f"on_drift must be one of {MODES}")
        stamp = _stamp(path)
        return cls(path, mode, read_lock(path), stamp)

    def reload_if_changed(self) -> bool:
        """Re-read the lock when the file changed; True when a new lock is in force."""
        stamp = _stamp(self.path)
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        try:
            self.lock = read_lock(self.path)
        except LockFileError as exc:
            self.reload_error = exc.reason
            return False
        self.reload_error = None
        return True

    def judge(self, definition: dict[str, Any]) -> Drift | None:
        """The drift of one live tool definition, or None when the lock holds exactly it."""
        live = Pinned.of("tools", definition)
        locked = self.lock.tools.get(live.key)
        if locked is None:
            return Drift("tools", live.key, Status.UNLOCKED, None, live.hash)
        if locked.hash == live.hash:
            return None
        comparison = compare(Snapshot(entries=_only(locked)), Snapshot(entries=_only(live)))
        return comparison.drifts[0]

    def observe(self, live_tools: list[dict[str, Any]]) -> list[Drift]:
        """Take a full live view of the tools; the drifts not announced before (each is announced once)."""
        live = Snapshot.from_definitions({}, {"tools": live_tools})
        drifts = {drift.key: drift for drift in compare(Snapshot(entries=_only_tools(self.lock)), live).drifts}
        self.drifts = drifts
        fresh = [drift for drift in drifts.values() if _identity(drift) not in self.reported]
        self.reported = {_identity(drift) for drift in drifts.values()}
        return fresh

    def blocks(self, drift: Drift | None) -> bool:
        """Whether a drift hides the tool and refuses its calls (a removed tool has nothing left to call)."""
        return drift is not None and drift.status is not Status.REMOVED and self.mode == "block"

    def readiness(self) -> tuple[bool, str]:
        """Always ready (a drifted tool is hidden, not an outage); one line per drift."""
        head = f"{len(self.lock.tools)} tools pinned by {self.path} (on_drift: {self.mode})"
        if self.reload_error:
            head += f"; the changed lock does not load, the last good one stays in force: {self.reload_error}"
        lines = [head, *(drift.summary() for _, drift in sorted(self.drifts.items()))]
        return True, "\n".join(lines)


def _only(pinned: Pinned) -> dict[str, dict[str, Pinned]]:
    return {"tools": {pinned.key: pinned}, "prompts": {}, "resource_templates": {}}


def _only_tools(lock: Snapshot) -> dict[str, dict[str, Pinned]]:
    return {"tools": dict(lock.tools), "prompts": {}, "resource_templates": {}}


def _identity(drift: Drift) -> tuple[str, str, str | None]:
    return drift.key, drift.status.value, drift.live_hash


def refusal_text(drift: Drift) -> str:
    """What the model reads when a drifted tool's call is refused."""
    return (f"Refused by the sidecar: {drift.summary()}. An operator must review the change "
            "(`mcp-sidecar tools diff`) before this tool can be used.")
