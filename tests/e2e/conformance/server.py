"""A conformance-capable MCP server for `@modelcontextprotocol/conformance` server scenarios (mcp SDK, low level).

It exposes exactly the tool, resource and prompt names the suite's scenarios call (test_simple_text,
test_tool_with_progress, test://static-text, test_prompt_with_arguments, ...), with progress, logging, sampling,
elicitation, completion, subscriptions and SSE resumability (SEP-1699), over Streamable HTTP on 127.0.0.1:

    python tests/e2e/conformance/server.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import warnings
import wave
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    AudioContent,
    BlobResourceContents,
    CallToolRequestParams,
    CallToolResult,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    EmbeddedResource,
    EmptyResult,
    GetPromptRequestParams,
    GetPromptResult,
    ImageContent,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    Prompt,
    PromptArgument,
    PromptMessage,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    Tool,
    UnsubscribeRequestParams,
)
from resumability import MemoryEventStore, resumable_on_every_handshake_version  # sibling module (run as a script)

# Sampling, logging/setLevel and server logging are deprecated as of 2026-07-28, but the suite tests them.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

PNG_1X1 = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc0000003"
    "010100c9fe92ef0000000049454e44ae426082")).decode()


def silent_wav() -> str:
    """One sample of 16-bit mono silence as a base64 WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\x00\x00")
    return base64.b64encode(buffer.getvalue()).decode()


WAV_SILENCE = silent_wav()
NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}
SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object",
                          "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}
SEP1034_SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string", "default": "John Doe"},
    "age": {"type": "integer", "default": 30},
    "score": {"type": "number", "default": 95.5},
    "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
    "verified": {"type": "boolean", "default": True},
}}
SEP1330_SCHEMA = {"type": "object", "properties": {
    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
    "titledSingle": {"type": "string", "oneOf": [{"const": "value1", "title": "First Option"},
                                                 {"const": "value2", "title": "Second Option"}]},
    "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                   "enumNames": ["Option One", "Option Two", "Option Three"]},
    "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
    "titledMulti": {"type": "array", "items": {"anyOf": [{"const": "value1", "title": "First Choice"},
                                                         {"const": "value2", "title": "Second Choice"}]}},
}}

Ctx = ServerRequestContext[Any, Any]
subscriptions: set[str] = set()


def text(value: str) -> TextContent:
    return TextContent(type="text", text=value)


def string_args(*names: str) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": "string"} for name in names}, "required": list(names)}


TOOLS = [
    Tool(name="test_simple_text", description="Returns simple text", input_schema=NO_ARGS),
    Tool(name="test_image_content", description="Returns an image", input_schema=NO_ARGS),
    Tool(name="test_audio_content", description="Returns audio", input_schema=NO_ARGS),
    Tool(name="test_embedded_resource", description="Returns an embedded resource", input_schema=NO_ARGS),
    Tool(name="test_multiple_content_types", description="Returns text, image and resource", input_schema=NO_ARGS),
    Tool(name="test_tool_with_logging", description="Logs three messages while running", input_schema=NO_ARGS),
    Tool(name="test_error_handling", description="Always fails", input_schema=NO_ARGS),
    Tool(name="test_tool_with_progress", description="Reports progress 0, 50, 100", input_schema=NO_ARGS),
    Tool(name="test_sampling", description="Asks the client's LLM", input_schema=string_args("prompt")),
    Tool(name="test_elicitation", description="Asks the user", input_schema=string_args("message")),
    Tool(name="test_elicitation_sep1034_defaults", description="Elicitation with defaults", input_schema=NO_ARGS),
    Tool(name="test_elicitation_sep1330_enums", description="Elicitation with enum schemas", input_schema=NO_ARGS),
    Tool(name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features",
         input_schema=SCHEMA_2020_12),
    Tool(name="test_reconnection", description="Closes its SSE stream before answering", input_schema=NO_ARGS),
]


async def list_tools(ctx: Ctx, params: Any) -> ListToolsResult:
    return ListToolsResult(tools=TOOLS)


async def call_tool(ctx: Ctx, params: CallToolRequestParams) -> CallToolResult:
    if params.name in STATIC_RESULTS:
        return CallToolResult(content=STATIC_RESULTS[params.name])
    handler = TOOL_HANDLERS.get(params.name)
    if handler is None:
        return CallToolResult(content=[text(f"Unknown tool: {params.name}")], is_error=True)
    try:
        return CallToolResult(content=await handler(ctx, params.arguments or {}))
    except ToolFailed as failure:
        return CallToolResult(content=[text(str(failure))], is_error=True)


class ToolFailed(Exception):
    """A tool's own failure: reported to the model as a result with isError, not as a protocol error."""


def embedded(uri: str, mime_type: str, body: str) -> EmbeddedResource:
    return EmbeddedResource(type="resource", resource=TextResourceContents(uri=uri, mime_type=mime_type, text=body))


PNG = ImageContent(type="image", data=PNG_1X1, mime_type="image/png")
STATIC_RESULTS: dict[str, list[Any]] = {
    "test_simple_text": [text("This is a simple text response for testing.")],
    "test_image_content": [PNG],
    "test_audio_content": [AudioContent(type="audio", data=WAV_SILENCE, mime_type="audio/wav")],
    "test_embedded_resource": [embedded("test://embedded-resource", "text/plain",
                                        "This is an embedded resource content.")],
    "test_multiple_content_types": [text("Multiple content types test:"), PNG, embedded(
        "test://mixed-content-resource", "application/json", '{"test":"data","value":123}')],
    "json_schema_2020_12_tool": [text("ok")],
}


async def _logging(ctx: Ctx, args: dict[str, Any]) -> list[Any]:
    for step, message in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
        if step:
            await asyncio.sleep(0.05)
        await ctx.session.send_log_message("info", message, logger="conformance", related_request_id=ctx.request_id)
    return [text("Tool with logging executed successfully")]


async def _progress(ctx: Ctx, args: dict[str, Any]) -> list[Any]:
    for step, value in enumerate((0, 50, 100)):
        if step:
            await asyncio.sleep(0.05)
        await ctx.session.report_progress(value, 100)
    return [text("Tool with progress executed successfully")]


async def _sampling(ctx: Ctx, args: dict[str, Any]) -> list[Any]:
    answer = await ctx.session.create_message(
        [SamplingMessage(role="user", content=text(str(args.get("prompt", ""))))], max_tokens=100,
        related_request_id=ctx.request_id)
    content = answer.content
    reply = content.text if isinstance(content, TextContent) else str(content)
    return [text(f"LLM response: {reply}")]


async def _elicit(ctx: Ctx, message: str, schema: dict[str, Any]) -> str:
    answer = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    return f"action={answer.action}, content={json.dumps(answer.content)}"


async def _elicitation(ctx: Ctx, args: dict[str, Any]) -> list[Any]:
    schema = {"type": "object", "required": ["username", "email"], "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"}}}
    return [text("User response: " + await _elicit(ctx, str(args.get("message", "")), schema))]


async def _sep1034(ctx: Ctx, args: dict[str, Any]) -> list[Any]:
    return [text("Elicitation completed: " + await _elicit(ctx, "Defaults for every primitive", SEP1034_SCHEMA))]


async def _sep1330(ctx: Ctx, args: dict[str, Any]) -> list[Any]:
    return [text("Elicitation completed: " + await _elicit(ctx, "Every enum variant", SEP1330_SCHEMA))]


async def _reconnection(ctx: Ctx, args: dict[str, Any]) -> list[Any]:
    """SEP-1699: close the POST stream mid-call; the client resumes with Last-Event-ID and gets the result."""
    if ctx.close_sse_stream is not None:
        await asyncio.sleep(0.3)  # closing before the SDK has written the priming event would lose that event
        await ctx.close_sse_stream()
        await asyncio.sleep(0.1)
    return [text("Reconnection test completed successfully")]


async def _error(ctx: Ctx, args: dict[str, Any]) -> list[Any]:
    raise ToolFailed("This tool intentionally returns an error for testing")


TOOL_HANDLERS: dict[str, Callable[[Ctx, dict[str, Any]], Awaitable[list[Any]]]] = {
    "test_tool_with_logging": _logging, "test_error_handling": _error, "test_tool_with_progress": _progress,
    "test_sampling": _sampling, "test_elicitation": _elicitation, "test_elicitation_sep1034_defaults": _sep1034,
    "test_elicitation_sep1330_enums": _sep1330, "test_reconnection": _reconnection,
}

STATIC_TEXT = "This is the content of the static text resource."
RESOURCES = [
    Resource(uri="test://static-text", name="static-text", description="A static text resource",
             mime_type="text/plain"),
    Resource(uri="test://static-binary", name="static-binary", description="A static PNG", mime_type="image/png"),
    Resource(uri="test://watched-resource", name="watched-resource", description="A resource to subscribe to",
             mime_type="text/plain"),
]
TEMPLATE = ResourceTemplate(uri_template="test://template/{id}/data", name="template-data",
                            description="Data for an id", mime_type="application/json")


async def list_resources(ctx: Ctx, params: Any) -> ListResourcesResult:
    return ListResourcesResult(resources=RESOURCES)


async def list_templates(ctx: Ctx, params: Any) -> ListResourceTemplatesResult:
    return ListResourceTemplatesResult(resource_templates=[TEMPLATE])


async def read_resource(ctx: Ctx, params: ReadResourceRequestParams) -> ReadResourceResult:
    uri = str(params.uri)
    if uri == "test://static-binary":
        return ReadResourceResult(contents=[BlobResourceContents(uri=uri, mime_type="image/png", blob=PNG_1X1)])
    if uri.startswith("test://template/") and uri.endswith("/data"):
        item = uri.removeprefix("test://template/").removesuffix("/data")
        body = json.dumps({"id": item, "templateTest": True, "data": f"Data for ID: {item}"})
        return ReadResourceResult(contents=[TextResourceContents(uri=uri, mime_type="application/json", text=body)])
    body = STATIC_TEXT if uri == "test://static-text" else f"Content of {uri}"
    return ReadResourceResult(contents=[TextResourceContents(uri=uri, mime_type="text/plain", text=body)])


async def subscribe(ctx: Ctx, params: SubscribeRequestParams) -> EmptyResult:
    subscriptions.add(str(params.uri))
    return EmptyResult()


async def unsubscribe(ctx: Ctx, params: UnsubscribeRequestParams) -> EmptyResult:
    subscriptions.discard(str(params.uri))
    return EmptyResult()


PROMPTS = [
    Prompt(name="test_simple_prompt", description="A prompt without arguments"),
    Prompt(name="test_prompt_with_arguments", description="A prompt with two arguments",
           arguments=[PromptArgument(name="arg1", description="First test argument", required=True),
                      PromptArgument(name="arg2", description="Second test argument", required=True)]),
    Prompt(name="test_prompt_with_embedded_resource", description="A prompt embedding a resource",
           arguments=[PromptArgument(name="resourceUri", description="URI to embed", required=True)]),
    Prompt(name="test_prompt_with_image", description="A prompt with an image"),
]


async def list_prompts(ctx: Ctx, params: Any) -> ListPromptsResult:
    return ListPromptsResult(prompts=PROMPTS)


async def get_prompt(ctx: Ctx, params: GetPromptRequestParams) -> GetPromptResult:
    args = params.arguments or {}
    if params.name == "test_prompt_with_arguments":
        messages = [PromptMessage(role="user", content=text(
            f"Prompt with arguments: arg1='{args.get('arg1')}', arg2='{args.get('arg2')}'"))]
    elif params.name == "test_prompt_with_embedded_resource":
        resource = embedded(args.get("resourceUri", "test://example-resource"), "text/plain",
                            "Embedded resource content for testing.")
        messages = [PromptMessage(role="user", content=resource),
                    PromptMessage(role="user", content=text("Please process the embedded resource above."))]
    elif params.name == "test_prompt_with_image":
        messages = [PromptMessage(role="user", content=ImageContent(type="image", data=PNG_1X1,
                                                                    mime_type="image/png")),
                    PromptMessage(role="user", content=text("Please analyze the image above."))]
    else:
        messages = [PromptMessage(role="user", content=text("This is a simple prompt for testing."))]
    return GetPromptResult(messages=messages)


async def complete(ctx: Ctx, params: CompleteRequestParams) -> CompleteResult:
    candidates = ["paris", "park", "party", "test-value", "testing"]
    values = [value for value in candidates if value.startswith(params.argument.value)]
    return CompleteResult(completion=Completion(values=values, total=len(values), has_more=False))


async def set_level(ctx: Ctx, params: SetLevelRequestParams) -> EmptyResult:
    return EmptyResult()


server = Server(
    "mcp-sidecar-conformance-server", version="1.0.0",
    on_list_tools=list_tools, on_call_tool=call_tool,
    on_list_resources=list_resources, on_list_resource_templates=list_templates, on_read_resource=read_resource,
    on_subscribe_resource=subscribe, on_unsubscribe_resource=unsubscribe,
    on_list_prompts=list_prompts, on_get_prompt=get_prompt, on_completion=complete,
    on_set_logging_level=set_level,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args(argv)
    resumable_on_every_handshake_version()
    app = server.streamable_http_app(host="127.0.0.1", event_store=MemoryEventStore(), retry_interval=500)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
