"""A starter data document for the shipped policies (`policies/*.rego`) in front of a given server: its tools,
grouped by their annotations, become the roles of `settings.tool_roles` (`mcp-sidecar policy init`).

The groups follow MCP's annotation defaults, as `destructive.rego` judges them: `readOnlyHint: true` is read-only;
otherwise `destructiveHint: false` is additive; anything else (destructive, or no annotations) is destructive.
Roles: `reader` gets the read-only tools, `editor` those and the additive ones, `operator` everything with an
approval for destructive calls, `admin` everything. Argument rules and tool costs of the base document are kept
for the tools this server has and dropped for the others; the other settings (methods, anonymous access, plans)
are kept as they are (the defaults without a base).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

READ_ONLY, ADDITIVE, DESTRUCTIVE = "read-only", "additive", "destructive"
DEFAULT_SETTINGS: dict[str, Any] = {
    "anonymous": {"allowed": False, "loopback_only": True},
    "methods": [
        "initialize", "notifications/initialized", "ping", "server/discover",
        "notifications/cancelled", "notifications/progress", "notifications/roots/list_changed",
        "tools/list", "prompts/list", "prompts/get", "resources/list", "resources/templates/list", "resources/read",
        "resources/subscribe", "resources/unsubscribe", "subscriptions/listen", "completion/complete",
        "logging/setLevel",
    ],
    "rate_limit": {"plan_claim": "plan", "default_plan": "free",
                   "plans": {"free": "plan-free", "pro": "plan-pro", "enterprise": "plan-enterprise"}},
}


@dataclass(frozen=True, slots=True)
class Starter:
    data: dict[str, Any]  # the document to write as data.json
    groups: dict[str, list[str]]  # READ_ONLY / ADDITIVE / DESTRUCTIVE -> tool names


def group_of(annotations: Mapping[str, Any] | None) -> str:
    if not isinstance(annotations, Mapping):
        return DESTRUCTIVE
    if annotations.get("readOnlyHint") is True:
        return READ_ONLY
    return ADDITIVE if annotations.get("destructiveHint") is False else DESTRUCTIVE


def group_tools(tools: Iterable[tuple[str, Mapping[str, Any] | None]]) -> dict[str, list[str]]:
    """(name, annotations) pairs into the three groups, names sorted."""
    groups: dict[str, list[str]] = {READ_ONLY: [], ADDITIVE: [], DESTRUCTIVE: []}
    for name, hints in tools:
        groups[group_of(hints)].append(name)
    return {group: sorted(names) for group, names in groups.items()}


def starter_data(tools: Iterable[tuple[str, Mapping[str, Any] | None]],
                 base: Mapping[str, Any] | None = None) -> Starter:
    """The data document: `base`'s settings (or the defaults) with this server's roles, and the argument rules and
    tool costs of its tools only."""
    tools = list(tools)
    names = {name for name, _ in tools}
    groups = group_tools(tools)
    settings = copy.deepcopy(dict((base or {}).get("settings") or DEFAULT_SETTINGS))
    settings["tool_roles"] = {
        "reader": groups[READ_ONLY],
        "editor": groups[READ_ONLY] + groups[ADDITIVE],
        "operator": ["*"],
        "admin": ["*"],
    }
    settings["destructive"] = {"elevated_roles": ["admin"], "approval_roles": ["operator"]}
    arguments = settings.get("arguments") or {}
    settings["arguments"] = {rule: _only(arguments.get(rule), names) for rule in ("path_prefix", "sql_select_only")}
    limits = settings.setdefault("rate_limit", copy.deepcopy(DEFAULT_SETTINGS["rate_limit"]))
    limits["tool_costs"] = _only(limits.get("tool_costs"), names)
    return Starter({**(base or {}), "settings": settings}, groups)


def _only(by_tool: Any, names: set[str]) -> dict[str, Any]:
    return {name: value for name, value in by_tool.items() if name in names} if isinstance(by_tool, dict) else {}
