"""A tool's own risks: what its annotations (or, without them, its name and description) say it does, and
inputs that take paths, URLs, SQL, shell commands or code with nothing in the schema to constrain them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from proxy.catalog import ANNOTATION_DEFAULTS
from proxy.tools.findings import Finding, Rule, Severity, finding

DESTRUCTIVE = Rule("risk.destructive", "a tool that may destroy or change state",
                   "Require an approval (policy obligation require_approval) or an elevated role for it.")
UNANNOTATED = Rule("risk.unannotated", "a tool without readOnlyHint / destructiveHint annotations",
                   "Annotate the tool in the server (readOnlyHint, destructiveHint, openWorldHint); until then the "
                   "sidecar treats it as destructive and open-world, as MCP's defaults say.")
OPEN_WORLD = Rule("risk.open-world", "a tool that reaches an open world of external entities",
                  "Confirm it must reach the outside (openWorldHint: false if not), and limit it with rate limits.")
UNCONSTRAINED = Rule("input.unconstrained", "a path, URL, SQL, command or code input with no constraint",
                     "Constrain the input in the schema (pattern, enum, maxLength, format) and add an argument rule "
                     "for it in policy (policies/arguments.rego).")
RULES = (DESTRUCTIVE, UNANNOTATED, OPEN_WORLD, UNCONSTRAINED)

_DESTROYING = re.compile(r"\b(delete|remove|drop|destroy|erase|purge|truncate|wipe|kill|terminate|overwrite|revoke|"
                         r"reset|format|uninstall)", re.IGNORECASE)
_CHANGING = re.compile(r"\b(write|update|create|send|post|execute|exec|run|move|rename|modify|set|insert|deploy|"
                       r"transfer|upload|publish|edit|patch|put|commit|push|merge|install|pay|charge|email)",
                       re.IGNORECASE)
# What an input takes, told by its name or title (first pattern) or by its description (second).
INPUT_KINDS: dict[str, tuple[re.Pattern[str], re.Pattern[str] | None]] = {
    "path": (re.compile(r"(^|_)(path|paths|file|files|filename|filepath|dir|directory|folder)($|_)", re.IGNORECASE),
             re.compile(r"\b(file|directory) ?path\b", re.IGNORECASE)),
    "url": (re.compile(r"(^|_)(url|uri|urls|endpoint|href|link|webhook)($|_)", re.IGNORECASE), None),
    "sql": (re.compile(r"(^|_)(sql|statement)($|_)", re.IGNORECASE), re.compile(r"\bSQL\b")),
    "command": (re.compile(r"(^|_)(command|cmd|shell|bash|argv)($|_)", re.IGNORECASE),
                re.compile(r"\bshell command\b", re.IGNORECASE)),
    "code": (re.compile(r"(^|_)(code|script|expression|expr|eval|program|snippet)($|_)", re.IGNORECASE), None),
}
CONSTRAINTS = ("pattern", "enum", "const", "maxLength", "format")


@dataclass(frozen=True, slots=True)
class RiskyInput:
    path: str  # inputSchema.properties.<name>[...]
    argument: str  # the top-level argument it belongs to
    kind: str  # path | url | sql | command | code


def effective_annotations(definition: dict[str, Any]) -> dict[str, Any]:
    given = definition.get("annotations")
    return {**ANNOTATION_DEFAULTS, **(given if isinstance(given, dict) else {})}


def is_destructive(definition: dict[str, Any]) -> bool:
    hints = effective_annotations(definition)
    return hints["readOnlyHint"] is not True and hints["destructiveHint"] is not False


def check_tool(name: str, definition: dict[str, Any]) -> Iterator[Finding]:
    yield from _behaviour(name, definition)
    for risky in risky_inputs(definition):
        yield finding(UNCONSTRAINED, Severity.MEDIUM, name, risky.path,
                      f"argument {risky.argument!r} takes {_kind_text(risky.kind)} and its schema has none of "
                      f"{', '.join(CONSTRAINTS)}")


def _behaviour(name: str, definition: dict[str, Any]) -> Iterator[Finding]:
    given = definition.get("annotations") if isinstance(definition.get("annotations"), dict) else {}
    hints = effective_annotations(definition)
    if "readOnlyHint" not in given and "destructiveHint" not in given:
        yield _unannotated(name, definition)
    elif is_destructive(definition):
        yield finding(DESTRUCTIVE, Severity.MEDIUM, name, "annotations",
                      f"readOnlyHint: {str(hints['readOnlyHint']).lower()}, "
                      f"destructiveHint: {str(hints['destructiveHint']).lower()}")
    if hints["openWorldHint"] is not False and given:
        said = "openWorldHint: true" if "openWorldHint" in given else "no openWorldHint (MCP's default: true)"
        yield finding(OPEN_WORLD, Severity.LOW, name, "annotations", said)


def _unannotated(name: str, definition: dict[str, Any]) -> Finding:
    text = f"{name.replace('_', ' ')} {definition.get('description') or ''}"
    destroying, changing = _DESTROYING.search(text), _CHANGING.search(text)
    if destroying:
        severity, said = Severity.HIGH, f"no annotations, and its name or description says {destroying.group()!r}"
    elif changing:
        severity, said = Severity.MEDIUM, f"no annotations, and its name or description says {changing.group()!r}"
    else:
        severity, said = Severity.LOW, "no annotations: MCP's defaults make it destructive and open-world"
    return finding(UNANNOTATED, severity, name, "annotations", said)


def risky_inputs(definition: dict[str, Any]) -> list[RiskyInput]:
    """String inputs whose name or description says path, URL, SQL, command or code, without a constraint."""
    schema = definition.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return []
    found: list[RiskyInput] = []
    for argument, spec in sorted(properties.items()):
        for path, leaf in _string_leaves(spec, f"inputSchema.properties.{argument}"):
            kind = input_kind(argument, leaf)
            if kind is not None and not any(key in leaf for key in CONSTRAINTS):
                found.append(RiskyInput(path, argument, kind))
    return found


def input_kind(argument: str, spec: dict[str, Any]) -> str | None:
    title = str(spec.get("title") or "").replace(" ", "_")
    description = str(spec.get("description") or "")
    for kind, (by_name, by_description) in INPUT_KINDS.items():
        if by_name.search(argument) or by_name.search(title):
            return kind
        if by_description is not None and by_description.search(description):
            return kind
    return None


def _string_leaves(spec: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The schema nodes that accept a string: the node itself, array items, anyOf/oneOf branches."""
    if not isinstance(spec, dict):
        return
    kind = spec.get("type")
    if kind == "string" or (isinstance(kind, list) and "string" in kind) or (kind is None and not _composite(spec)):
        yield path, spec
    if isinstance(spec.get("items"), dict):
        yield from _string_leaves(spec["items"], f"{path}.items")
    for branch in ("anyOf", "oneOf"):
        for index, option in enumerate(spec.get(branch) or []):
            yield from _string_leaves(option, f"{path}.{branch}[{index}]")


def _composite(spec: dict[str, Any]) -> bool:
    return any(key in spec for key in ("anyOf", "oneOf", "allOf", "$ref", "properties", "items", "enum", "const"))


def _kind_text(kind: str) -> str:
    return {"path": "a file path", "url": "a URL", "sql": "SQL", "command": "a shell command", "code": "code"}[kind]
