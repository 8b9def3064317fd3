"""List results as policy sees them: one item per entry, keyed by name (or uri), with trusted tool facts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.catalog import ANNOTATION_DEFAULTS, ToolInfo


def list_item(kind: str, entry: Mapping[str, Any], key_field: str) -> dict[str, Any]:
    """The policy's view of one entry of a tools/prompts/resources/templates list."""
    item: dict[str, Any] = {"key": entry.get(key_field)}
    if kind == "tools":
        if isinstance(entry.get("name"), str):
            tool = ToolInfo.from_definition(dict(entry))  # the same annotations and hash the catalog gives
            item.update(name=tool.name, title=entry.get("title"), annotations=tool.annotations, hash=tool.hash)
        else:
            item.update(name=None, title=None, annotations=dict(ANNOTATION_DEFAULTS), hash=None)
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
    """The entries policy lets the caller see; one without a string key (a malformed list) is dropped."""
    return [entry for entry in entries
            if isinstance(entry, Mapping) and isinstance(key := entry.get(key_field), str) and key in visible]
