"""List results as policy sees them: one item per entry, keyed by name (or uri), with trusted tool facts."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

# MCP's defaults for absent tool annotations: an unannotated tool counts as destructive and open-world.
ANNOTATION_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}


def tool_annotations(definition: Mapping[str, Any]) -> dict[str, Any]:
    given = definition.get("annotations")
    return {**ANNOTATION_DEFAULTS, **(given if isinstance(given, Mapping) else {})}


def definition_hash(definition: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()


def list_item(kind: str, entry: Mapping[str, Any], key_field: str) -> dict[str, Any]:
    """The policy's view of one entry of a tools/prompts/resources/templates list."""
    item: dict[str, Any] = {"key": entry.get(key_field)}
    if kind == "tools":
        item.update(name=entry.get("name"), title=entry.get("title"), annotations=tool_annotations(entry),
                    hash=definition_hash(entry))
    elif kind == "prompts":
        arguments = entry.get("arguments") if isinstance(entry.get("arguments"), list) else []
        item.update(name=entry.get("name"), title=entry.get("title"),
                    arguments=[arg.get("name") for arg in arguments if isinstance(arg, Mapping)])
    elif kind == "resources":
        item.update(uri=entry.get("uri"), name=entry.get("name"), mimeType=entry.get("mimeType"))
    else:
        item.update(uriTemplate=entry.get("uriTemplate"), name=entry.get("name"))
    return item


def filter_entries(entries: list[Any], key_field: str, visible: frozenset[str]) -> list[Any]:
    return [entry for entry in entries if isinstance(entry, Mapping) and entry.get(key_field) in visible]
