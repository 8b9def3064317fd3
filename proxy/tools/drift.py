"""What differs between a lock file and the live server: entries added, removed or changed, field by field."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.tools.pinning import KINDS, Pinned, Snapshot
from proxy.tools.poisoning import escape_hidden

TEXT_FIELDS = ("title", "description")  # shown as a unified diff


class Status(enum.StrEnum):
    CHANGED = "changed"  # in the lock and live, with another definition
    UNLOCKED = "unlocked"  # live, not in the lock
    REMOVED = "removed"  # in the lock, gone from the live server


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str  # dotted path into the canonical definition, e.g. inputSchema.properties.path.pattern
    before: Any  # None when the field was added
    after: Any  # None when the field was removed


@dataclass(frozen=True, slots=True)
class Drift:
    kind: str  # tools | prompts | resource_templates
    key: str
    status: Status
    locked_hash: str | None
    live_hash: str | None
    changes: tuple[FieldChange, ...] = ()

    def summary(self) -> str:
        """One line naming the drift, for the tool result a refused call gets and for logs."""
        if self.status is Status.UNLOCKED:
            return f"{self.key} is not in the reviewed tools lock"
        if self.status is Status.REMOVED:
            return f"{self.key} is in the tools lock but the server no longer offers it"
        fields = sorted({change.path.split(".", 1)[0] for change in self.changes})
        return f"{self.key} differs from its reviewed definition ({', '.join(fields)} changed)"


@dataclass(frozen=True, slots=True)
class Comparison:
    server_before: dict[str, Any]
    server_after: dict[str, Any]
    drifts: tuple[Drift, ...]

    @property
    def equal(self) -> bool:
        return not self.drifts and self.server_before == self.server_after

    def of_kind(self, kind: str) -> dict[str, Drift]:
        return {drift.key: drift for drift in self.drifts if drift.kind == kind}


def compare(locked: Snapshot, live: Snapshot) -> Comparison:
    drifts: list[Drift] = []
    for kind in KINDS:
        drifts.extend(_drifts_of(kind, locked.entries[kind], live.entries[kind]))
    return Comparison(dict(locked.server), dict(live.server), tuple(drifts))


def _drifts_of(kind: str, locked: dict[str, Pinned], live: dict[str, Pinned]) -> Iterator[Drift]:
    for key in sorted(set(locked) | set(live)):
        before, after = locked.get(key), live.get(key)
        if before is None:
            assert after is not None
            yield Drift(kind, key, Status.UNLOCKED, None, after.hash)
        elif after is None:
            yield Drift(kind, key, Status.REMOVED, before.hash, None)
        elif before.hash != after.hash:
            changes = tuple(field_changes(before.definition, after.definition))
            yield Drift(kind, key, Status.CHANGED, before.hash, after.hash, changes)


def field_changes(before: Any, after: Any, path: str = "") -> Iterator[FieldChange]:
    """Leaf-level differences between two JSON values, by dotted path (list items by index)."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            yield from field_changes(before.get(key), after.get(key), f"{path}.{key}" if path else str(key))
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from field_changes(old, new, f"{path}[{index}]")
    elif _json(before) != _json(after):
        yield FieldChange(path, before, after)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def render(comparison: Comparison) -> str:
    """The human form `tools diff` prints: one block per drift, a unified diff for descriptions and titles."""
    lines: list[str] = []
    if comparison.server_before != comparison.server_after:
        lines.append(f"server: {_server(comparison.server_before)} -> {_server(comparison.server_after)}")
    for drift in comparison.drifts:
        lines.append(f"{drift.status.value} {drift.kind[:-1].replace('_', ' ')} {drift.key}")
        for change in drift.changes:
            lines.extend("    " + line for line in _change_lines(drift.key, change))
    return "\n".join(lines) + ("\n" if lines else "")


def _server(server: dict[str, Any]) -> str:
    return f"{server.get('name', '?')} {server.get('version', '?')}"


def _change_lines(key: str, change: FieldChange) -> list[str]:
    if change.path in TEXT_FIELDS and isinstance(change.before, str) and isinstance(change.after, str):
        diff = difflib.unified_diff(change.before.splitlines(), change.after.splitlines(),
                                    f"{key}.{change.path} (locked)", f"{key}.{change.path} (live)", lineterm="")
        return [escape_hidden(line) for line in diff]
    if change.before is None:
        return [f"{change.path}: added {_shown(change.after)}"]
    if change.after is None:
        return [f"{change.path}: removed (was {_shown(change.before)})"]
    return [f"{change.path}: {_shown(change.before)} -> {_shown(change.after)}"]


def _shown(value: Any) -> str:
    return escape_hidden(orjson.dumps(value).decode())

