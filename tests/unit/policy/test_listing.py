"""How list entries look to policy (list_item) and how a result keeps only the visible ones (filter_entries)."""

from __future__ import annotations

from proxy.catalog import ANNOTATION_DEFAULTS, ToolInfo
from proxy.policy.listing import filter_entries, list_item


def test_a_tool_item_carries_trusted_annotations_with_mcp_defaults_and_the_catalogs_hash() -> None:
    entry = {"name": "add", "title": "Add", "inputSchema": {}, "annotations": {"readOnlyHint": True}}
    item = list_item("tools", entry, "name")
    assert item == {"key": "add", "name": "add", "title": "Add",
                    "annotations": {**ANNOTATION_DEFAULTS, "readOnlyHint": True},
                    "hash": ToolInfo.from_definition(entry).hash}


def test_a_tool_without_annotations_is_destructive_by_default() -> None:
    item = list_item("tools", {"name": "rm"}, "name")
    assert item["annotations"]["destructiveHint"] is True and item["title"] is None


def test_a_tool_without_a_string_name_gets_defaults_and_no_hash() -> None:
    item = list_item("tools", {"name": 7, "annotations": {"readOnlyHint": True}}, "name")
    assert item == {"key": 7, "name": None, "title": None, "annotations": dict(ANNOTATION_DEFAULTS), "hash": None}
    item["annotations"]["readOnlyHint"] = True
    assert ANNOTATION_DEFAULTS["readOnlyHint"] is False  # the defaults are copied, not shared


def test_a_prompt_item_names_its_arguments() -> None:
    entry = {"name": "greet", "title": "Greet", "arguments": [{"name": "who"}, "junk", {"name": "tone"}]}
    assert list_item("prompts", entry, "name") == {"key": "greet", "name": "greet", "title": "Greet",
                                                    "arguments": ["who", "tone"]}
    assert list_item("prompts", {"name": "p", "arguments": "x"}, "name")["arguments"] == []


def test_resource_and_template_items() -> None:
    resource = {"uri": "demo://readme", "name": "readme", "mimeType": "text/plain", "size": 3}
    assert list_item("resources", resource, "uri") == {"key": "demo://readme", "uri": "demo://readme",
                                                        "name": "readme", "mimeType": "text/plain"}
    template = {"uriTemplate": "demo://{id}", "name": "by id"}
    assert list_item("resource_templates", template, "uriTemplate") == {"key": "demo://{id}",
                                                                        "uriTemplate": "demo://{id}", "name": "by id"}


def test_filter_keeps_order_and_drops_invisible_and_malformed_entries() -> None:
    entries = [{"name": "a"}, {"name": "b"}, "junk", {"name": "c"}, {"title": "no name"}]
    assert filter_entries(entries, "name", frozenset({"c", "a"})) == [{"name": "a"}, {"name": "c"}]
    assert filter_entries(entries, "name", frozenset()) == []


def test_an_entry_with_an_unhashable_key_is_dropped_not_fatal() -> None:
    entries = [{"name": {"evil": True}}, {"name": ["x"]}, {"name": "a"}]
    assert list_item("tools", entries[0], "name")["key"] == {"evil": True}
    assert filter_entries(entries, "name", frozenset({"a"})) == [{"name": "a"}]
