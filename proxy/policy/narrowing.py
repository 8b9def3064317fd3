"""data.mcp.argument_names: the arguments of a tools/call that its decision reads, so that only those reach it.

A call's arguments differ on nearly every call, so a result keyed by the whole projected input (memo.py) is rarely
remembered for a tools/call. A policy that defines `argument_names` (a set of argument names) says which ones its
rules read. The entrypoint is evaluated over the call's input without `input.mcp.tool.arguments` (so its own
result is remembered per caller and tool), then every entrypoint queried for that call sees the arguments cut
down to those names: a call that differs only in other arguments reuses the remembered decision.
Undefined, or a set holding "*": all arguments (as without the entrypoint). Any other value is an error (deny).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from proxy.policy.projection import MAPPINGS

RULE = "argument_names"
ENTRYPOINT = "mcp/" + RULE
ALL = "*"

_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_HEAD = re.compile(r"^[ \t]*" + RULE + r"\b", re.MULTILINE)


class IllTypedNamesError(ValueError):
    """data.mcp.argument_names is neither undefined nor a set of strings."""


def defines_argument_names(blanked_sources: Iterable[str]) -> bool:
    """Whether a module may define data.mcp.argument_names (strings and comments blanked). A body line that starts
    with the name reads as a head too: that only costs an evaluation that comes back undefined."""
    for source in blanked_sources:
        package = _PACKAGE.search(source)
        name = package.group(1) if package else ""
        if (name == "mcp" and _HEAD.search(source)) or name == "mcp." + RULE or name.startswith(f"mcp.{RULE}."):
            return True
    return False


def call_tool(document: Any) -> Mapping[str, Any] | None:
    """input.mcp.tool when `document` is a tools/call's input (a tool with an arguments object), else None."""
    mcp = document.get("mcp") if isinstance(document, MAPPINGS) else None
    tool = mcp.get("tool") if isinstance(mcp, MAPPINGS) else None
    return tool if isinstance(tool, MAPPINGS) and isinstance(tool.get("arguments"), MAPPINGS) else None


def narrow(call: Mapping[str, Any], names_for: Callable[[dict[str, Any]], Any]) -> Any:
    """A tools/call's input (or its projection, which may hold no tool or no arguments) with the arguments cut
    down to the names `names_for` returns for the input without them. The names are asked for in every case: an
    ill-typed answer denies even a call with nothing to cut."""
    mcp = call.get("mcp")
    tool = mcp.get("tool") if isinstance(mcp, MAPPINGS) else None
    if not isinstance(tool, MAPPINGS):
        argument_names(names_for(dict(call)))
        return call
    bare = dict(tool)
    bare.pop("arguments", None)
    names = argument_names(names_for(_with_tool(call, bare)))
    arguments = tool.get("arguments")
    if names is None or not isinstance(arguments, MAPPINGS):
        return call
    # In name order: one memo key per value.
    kept = {name: arguments[name] for name in names if name in arguments} if names else {}
    return _with_tool(call, {**tool, "arguments": kept})


def without_arguments(document: Any) -> dict[str, Any] | None:
    """A tools/call's input without input.mcp.tool.arguments (what argument_names is evaluated over); None for any
    other document."""
    tool = call_tool(document)
    if tool is None:
        return None
    return _with_tool(document, {key: value for key, value in tool.items() if key != "arguments"})


def _with_tool(document: Mapping[str, Any], tool: dict[str, Any]) -> dict[str, Any]:
    return {**document, "mcp": {**document["mcp"], "tool": tool}}


def argument_names(value: Any) -> tuple[str, ...] | None:
    """The names the entrypoint returned, sorted; None for all arguments. Raises IllTypedNamesError."""
    if value is None:
        return None
    if value == []:  # the common answer: no argument matters
        return ()
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise IllTypedNamesError(f"data.mcp.{RULE} is ill-typed: expected a set of argument names (strings)")
    return None if ALL in value else tuple(sorted(set(value)))
