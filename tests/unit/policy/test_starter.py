"""The starter data of `policy init`: tools grouped by annotations into roles, a base document's other settings
kept, its per-tool rules kept only for tools the server has."""

from __future__ import annotations

from proxy.policy.starter import ADDITIVE, DEFAULT_SETTINGS, DESTRUCTIVE, READ_ONLY, group_of, starter_data

TOOLS = [
    ("search", {"readOnlyHint": True}),
    ("create_issue", {"readOnlyHint": False, "destructiveHint": False}),
    ("drop_table", {"destructiveHint": True}),
    ("mystery", None),
    ("only_idempotent", {"idempotentHint": True}),  # MCP's defaults: destructive
]


def test_groups_follow_the_annotation_defaults() -> None:
    assert [group_of(annotations) for _, annotations in TOOLS] == [READ_ONLY, ADDITIVE, DESTRUCTIVE, DESTRUCTIVE,
                                                                    DESTRUCTIVE]


def test_roles_from_groups_with_default_settings() -> None:
    starter = starter_data(TOOLS)
    settings = starter.data["settings"]
    assert settings["tool_roles"] == {"reader": ["search"], "editor": ["search", "create_issue"],
                                      "operator": ["*"], "admin": ["*"]}
    assert settings["destructive"] == {"elevated_roles": ["admin"], "approval_roles": ["operator"]}
    assert settings["methods"] == DEFAULT_SETTINGS["methods"] and settings["anonymous"]["allowed"] is False
    assert settings["arguments"] == {"path_prefix": {}, "sql_select_only": {}}
    assert settings["rate_limit"]["tool_costs"] == {} and settings["rate_limit"]["plans"]["pro"] == "plan-pro"
    assert starter.groups[DESTRUCTIVE] == ["drop_table", "mystery", "only_idempotent"]
    assert "tool_costs" not in DEFAULT_SETTINGS["rate_limit"]  # the defaults are not mutated


def test_a_base_keeps_its_settings_and_the_rules_of_tools_still_there() -> None:
    base = {"settings": {"anonymous": {"allowed": True}, "methods": ["ping"],
                         "arguments": {"path_prefix": {"read_file": {"argument": "path", "prefixes": ["/srv/"]},
                                                       "search": {"argument": "q", "prefixes": ["/"]}}},
                         "rate_limit": {"plans": {}, "tool_costs": {"search": 3, "gone": 9}}},
            "teams": {"payments": "ann"}}
    data = starter_data(TOOLS, base).data
    assert data["teams"] == {"payments": "ann"}
    assert data["settings"]["anonymous"] == {"allowed": True} and data["settings"]["methods"] == ["ping"]
    assert data["settings"]["arguments"]["path_prefix"] == {"search": {"argument": "q", "prefixes": ["/"]}}
    assert data["settings"]["rate_limit"]["tool_costs"] == {"search": 3}
    assert base["settings"]["rate_limit"]["tool_costs"] == {"search": 3, "gone": 9}  # the base is not mutated
