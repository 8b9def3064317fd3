"""A tool's own risks: annotations, inference when they are missing, and unconstrained inputs."""

from __future__ import annotations

from proxy.tools.findings import Severity
from proxy.tools.risks import check_tool, is_destructive, risky_inputs

READ_ONLY = {"readOnlyHint": True, "openWorldHint": False}


def found(definition: dict) -> dict[str, tuple[Severity, str]]:
    return {(f.rule.id): (f.severity, f.evidence) for f in check_tool(definition["name"], definition)}


def string(**extra: object) -> dict:
    return {"type": "string", **extra}


def tool(name: str, annotations: dict | None = None, description: str = "", **properties: dict) -> dict:
    definition: dict = {"name": name, "description": description,
                        "inputSchema": {"type": "object", "properties": properties}}
    if annotations is not None:
        definition["annotations"] = annotations
    return definition


def test_a_read_only_closed_world_tool_with_constrained_inputs_is_clean() -> None:
    assert found(tool("read", READ_ONLY, path=string(pattern="^/srv/"))) == {}
    assert not is_destructive(tool("read", READ_ONLY))


def test_annotated_destructive_and_open_world_tools() -> None:
    result = found(tool("delete_file", {"destructiveHint": True, "readOnlyHint": False}))
    assert result["risk.destructive"] == (Severity.MEDIUM, "readOnlyHint: false, destructiveHint: true")
    assert result["risk.open-world"][0] is Severity.LOW and "default" in result["risk.open-world"][1]


def test_unannotated_tools_are_not_assumed_safe() -> None:
    assert found(tool("purge_cache"))["risk.unannotated"][0] is Severity.HIGH
    assert found(tool("notes", description="Update the note."))["risk.unannotated"][0] is Severity.MEDIUM
    assert found(tool("weather"))["risk.unannotated"][0] is Severity.LOW
    assert is_destructive(tool("weather"))


def test_unconstrained_risky_inputs_are_found_by_name_title_or_description() -> None:
    definition = tool("run", READ_ONLY, file_path=string(), target=string(title="URL"),
                      q=string(description="A SQL statement"), cmd=string(maxLength=20),
                      paths={"type": "array", "items": string()}, count={"type": "integer"})
    inputs = {(r.argument, r.kind, r.path) for r in risky_inputs(definition)}
    assert inputs == {("file_path", "path", "inputSchema.properties.file_path"),
                      ("target", "url", "inputSchema.properties.target"),
                      ("q", "sql", "inputSchema.properties.q"),
                      ("paths", "path", "inputSchema.properties.paths.items")}
    assert found(definition)["input.unconstrained"][0] is Severity.MEDIUM


def test_enum_format_and_const_count_as_constraints() -> None:
    definition = tool("fetch", READ_ONLY, url=string(format="uri"), mode=string(enum=["a"]), path=string(const="/x"))
    assert risky_inputs(definition) == []
