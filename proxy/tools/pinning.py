"""Pinned definitions: the canonical form of a tool, prompt or resource template, its hash, and the lock file.

The canonical definition and its hash are the catalog's (proxy/catalog.py): only the fields a model reads or a
policy trusts (for a tool: name, title, description, input and output schema, annotations), so a server adding
`_meta` or an icon does not count as a change. Policy reads the same hash, so it can require a reviewed one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from proxy.catalog import PINNED_FIELDS, canonical, definition_hash

LOCK_VERSION = 1
KINDS = PINNED_FIELDS  # each pinned kind: the lock file's section, the field naming an entry, the fields hashed


class LockFileError(Exception):
    """A lock file that cannot be read, does not parse, or whose hashes do not match its own definitions."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def tool_hash(definition: dict[str, Any]) -> str:
    return definition_hash("tools", definition)


@dataclass(frozen=True, slots=True)
class Pinned:
    """One reviewed definition: its key (tool name, prompt name or URI template), hash and canonical form."""

    key: str
    hash: str
    definition: dict[str, Any]

    @classmethod
    def of(cls, kind: str, definition: dict[str, Any]) -> Pinned:
        form = canonical(kind, definition)
        return cls(str(form[KINDS[kind][0]]), definition_hash(kind, form), form)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a server offers (or what a lock file says it offered): server info and every pinned kind by key."""

    server: dict[str, Any] = field(default_factory=dict)  # name, version
    entries: dict[str, dict[str, Pinned]] = field(default_factory=lambda: {kind: {} for kind in KINDS})

    @classmethod
    def from_definitions(cls, server: dict[str, Any], definitions: dict[str, list[dict[str, Any]]]) -> Snapshot:
        entries: dict[str, dict[str, Pinned]] = {}
        for kind, (key_field, _) in KINDS.items():
            items = [d for d in definitions.get(kind, []) if isinstance(d, dict) and isinstance(d.get(key_field), str)]
            entries[kind] = {pinned.key: pinned for pinned in (Pinned.of(kind, item) for item in items)}
        return cls({k: server[k] for k in ("name", "version") if k in server}, entries)

    @property
    def tools(self) -> dict[str, Pinned]:
        return self.entries["tools"]

    def to_document(self) -> dict[str, Any]:
        """The lock file's content, entries sorted by key so a rewrite of the same server is byte-identical."""
        document: dict[str, Any] = {"lock_version": LOCK_VERSION, "server": dict(self.server)}
        for kind in KINDS:
            document[kind] = [{"name": p.key, "hash": p.hash, "definition": p.definition}
                              for _, p in sorted(self.entries[kind].items())]
        return document


def dump_lock(snapshot: Snapshot, path: Path) -> str:
    """The lock file text: JSON for a `.json` path, else YAML (non-ASCII escaped, so hidden characters show)."""
    document = snapshot.to_document()
    if path.suffix == ".json":
        return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    header = "# mcp-sidecar tools lock: reviewed definitions; rewrite with `mcp-sidecar tools lock --update`\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=False, width=100)


def write_lock(snapshot: Snapshot, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(dump_lock(snapshot, path), encoding="utf-8")
    temporary.replace(path)  # readers (other workers, replicas) see the old file or the new one, never half


def read_lock(path: Path) -> Snapshot:
    """Parse and verify a lock file; every problem raises LockFileError with the path and the reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LockFileError(path, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document = orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise LockFileError(path, f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    try:
        return _snapshot_of(document)
    except ValueError as exc:
        raise LockFileError(path, str(exc)) from None


def _snapshot_of(document: Any) -> Snapshot:
    if not isinstance(document, dict):
        raise ValueError("the top level must be a mapping")
    if document.get("lock_version") != LOCK_VERSION:
        raise ValueError(f"lock_version must be {LOCK_VERSION}, got {document.get('lock_version')!r}")
    server = document.get("server") or {}
    if not isinstance(server, dict):
        raise ValueError("server must be a mapping with name and version")
    entries = {kind: _entries_of(kind, [] if document.get(kind) is None else document[kind]) for kind in KINDS}
    return Snapshot({k: server[k] for k in ("name", "version") if k in server}, entries)


def _entries_of(kind: str, items: Any) -> dict[str, Pinned]:
    if not isinstance(items, list):
        raise ValueError(f"{kind} must be a list")
    found: dict[str, Pinned] = {}
    for index, item in enumerate(items):
        where = f"{kind}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("definition"), dict):
            raise ValueError(f"{where}: expected a mapping with name, hash and definition")
        pinned = Pinned.of(kind, item["definition"]) if KINDS[kind][0] in item["definition"] else None
        if pinned is None or pinned.key != item.get("name"):
            raise ValueError(f"{where}: name {item.get('name')!r} does not match its definition")
        if pinned.hash != item.get("hash"):
            raise ValueError(f"{where} ({pinned.key}): hash {item.get('hash')!r} does not match its definition "
                             f"(which hashes to {pinned.hash})")
        if pinned.key in found:
            raise ValueError(f"{where}: {pinned.key!r} is listed twice")
        found[pinned.key] = pinned
    return found
