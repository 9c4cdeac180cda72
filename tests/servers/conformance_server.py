"""The backend the MCP conformance suite (npm @modelcontextprotocol/conformance) tests, on the SDK's low-level Server.

    python tests/servers/conformance_server.py --port 8801   # streamable HTTP on 127.0.0.1:8801/mcp

It implements what the suite's server scenarios ask of a server under test
(`npx conformance list --server`; each scenario's requirements are in its
description): the `test_*` tools, the `test://` resources and template, the
`test_*` prompts, completion, resource subscriptions and `logging/setLevel`.
tests/test_conformance.py runs the suite against it directly and through the
gateway.
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPDeprecationWarning

# Logging and sampling are deprecated as of 2026-07-28, and the suite tests them on 2025-11-25.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="  # 1x1 px
WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="  # an empty 8 kHz mono WAV
Ctx = ServerRequestContext[Any, Any]


def obj(props: dict[str, Any] | None = None, required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props or {}, "required": required or []}


def text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def embedded(uri: str, mime_type: str, body: str) -> types.EmbeddedResource:
    return types.EmbeddedResource(type="resource",
                                  resource=types.TextResourceContents(uri=uri, mime_type=mime_type, text=body))


SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}

TOOLS = [
    types.Tool(name="test_simple_text", description="Returns simple text", input_schema=obj()),
    types.Tool(name="test_image_content", description="Returns an image", input_schema=obj()),
    types.Tool(name="test_audio_content", description="Returns audio", input_schema=obj()),
    types.Tool(name="test_embedded_resource", description="Returns an embedded resource", input_schema=obj()),
    types.Tool(name="test_multiple_content_types", description="Returns text, image and resource",
               input_schema=obj()),
    types.Tool(name="test_tool_with_logging", description="Sends three log messages", input_schema=obj()),
    types.Tool(name="test_tool_with_progress", description="Reports progress 0, 50, 100 of 100", input_schema=obj()),
    types.Tool(name="test_error_handling", description="Always returns an isError result", input_schema=obj()),
    types.Tool(name="test_sampling", description="Asks the client for an LLM completion",
               input_schema=obj({"prompt": {"type": "string"}}, ["prompt"])),
    types.Tool(name="test_elicitation", description="Asks the user for a username and email",
               input_schema=obj({"message": {"type": "string"}}, ["message"])),
    types.Tool(name="test_elicitation_sep1034_defaults", description="Elicitation with defaults (SEP-1034)",
               input_schema=obj()),
    types.Tool(name="test_elicitation_sep1330_enums", description="Elicitation with enum schemas (SEP-1330)",
               input_schema=obj()),
    types.Tool(name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features",
               input_schema=SCHEMA_2020_12),
]

ELICIT_CONTACT = obj({"username": {"type": "string", "description": "User's response"},
                      "email": {"type": "string", "description": "User's email address"}}, ["username", "email"])
ELICIT_DEFAULTS = obj({
    "name": {"type": "string", "default": "John Doe"},
    "age": {"type": "integer", "default": 30},
    "score": {"type": "number", "default": 95.5},
    "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
    "verified": {"type": "boolean", "default": True},
})
ELICIT_ENUMS = obj({
    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
    "titledSingle": {"type": "string", "oneOf": [{"const": "value1", "title": "First Option"},
                                                 {"const": "value2", "title": "Second Option"}]},
    "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                   "enumNames": ["Option One", "Option Two", "Option Three"]},
    "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
    "titledMulti": {"type": "array", "items": {"anyOf": [{"const": "value1", "title": "First Choice"},
                                                         {"const": "value2", "title": "Second Choice"}]}},
})

PROMPTS = [
    types.Prompt(name="test_simple_prompt", description="A prompt without arguments"),
    types.Prompt(name="test_prompt_with_arguments", description="A prompt with two arguments",
                 arguments=[types.PromptArgument(name="arg1", description="First test argument", required=True),
                            types.PromptArgument(name="arg2", description="Second test argument", required=True)]),
    types.Prompt(name="test_prompt_with_embedded_resource", description="A prompt embedding a resource",
                 arguments=[types.PromptArgument(name="resourceUri", description="URI to embed", required=True)]),
    types.Prompt(name="test_prompt_with_image", description="A prompt with an image"),
]

RESOURCES = [
    types.Resource(uri="test://static-text", name="static-text", description="A static text resource",
                   mime_type="text/plain"),
    types.Resource(uri="test://static-binary", name="static-binary", description="A static PNG",
                   mime_type="image/png"),
    types.Resource(uri="test://watched-resource", name="watched-resource", description="A subscribable resource",
                   mime_type="text/plain"),
]
TEMPLATE = types.ResourceTemplate(uri_template="test://template/{id}/data", name="template",
                                  description="Data for an id", mime_type="application/json")


async def elicit(ctx: Ctx, message: str, schema: dict[str, Any]) -> str:
    result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    return f"action={result.action}, content={json.dumps(result.content or {})}"


async def call_tool(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    content: list[Any]
    match params.name:
        case "test_simple_text":
            content = [text("This is a simple text response for testing.")]
        case "test_image_content":
            content = [types.ImageContent(type="image", data=PNG, mime_type="image/png")]
        case "test_audio_content":
            content = [types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")]
        case "test_embedded_resource":
            content = [embedded("test://embedded-resource", "text/plain", "This is an embedded resource content.")]
        case "test_multiple_content_types":
            content = [text("Multiple content types test:"),
                       types.ImageContent(type="image", data=PNG, mime_type="image/png"),
                       embedded("test://mixed-content-resource", "application/json", '{"test":"data","value":123}')]
        case "test_tool_with_logging":
            for i, message in enumerate(["Tool execution started", "Tool processing data", "Tool execution completed"]):
                if i:
                    await anyio.sleep(0.05)
                await ctx.session.send_log_message("info", message, "conformance", related_request_id=ctx.request_id)
            content = [text("Tool with logging executed successfully")]
        case "test_tool_with_progress":
            for i, done in enumerate([0, 50, 100]):
                if i:
                    await anyio.sleep(0.05)
                await ctx.session.report_progress(done, 100, f"{done} of 100")
            content = [text("Tool with progress executed successfully")]
        case "test_error_handling":
            return types.CallToolResult(content=[text("This tool intentionally returns an error for testing")],
                                        is_error=True)
        case "test_sampling":
            sampled = await ctx.session.create_message(
                [types.SamplingMessage(role="user", content=text(str(args.get("prompt", ""))))],
                max_tokens=100, related_request_id=ctx.request_id)
            answer = sampled.content.text if isinstance(sampled.content, types.TextContent) else "(not text)"
            content = [text(f"LLM response: {answer}")]
        case "test_elicitation":
            content = [text("User response: " + await elicit(ctx, str(args.get("message", "")), ELICIT_CONTACT))]
        case "test_elicitation_sep1034_defaults":
            result = await elicit(ctx, "Please provide user information", ELICIT_DEFAULTS)
            content = [text(f"Elicitation completed: {result}")]
        case "test_elicitation_sep1330_enums":
            result = await elicit(ctx, "Please pick values of each enum kind", ELICIT_ENUMS)
            content = [text(f"Elicitation completed: {result}")]
        case "json_schema_2020_12_tool":
            content = [text(f"received {json.dumps(args)}")]
        case _:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool {params.name}")
    return types.CallToolResult(content=content)


async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=RESOURCES)


async def list_templates(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(resource_templates=[TEMPLATE])


async def read_resource(ctx: Ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    uri = str(params.uri)
    contents: types.TextResourceContents | types.BlobResourceContents
    if uri == "test://static-text":
        contents = types.TextResourceContents(uri=uri, mime_type="text/plain",
                                              text="This is the content of the static text resource.")
    elif uri == "test://static-binary":
        contents = types.BlobResourceContents(uri=uri, mime_type="image/png", blob=PNG)
    elif uri == "test://watched-resource":
        contents = types.TextResourceContents(uri=uri, mime_type="text/plain", text="Watched resource content")
    elif uri.startswith("test://template/") and uri.endswith("/data"):
        id_ = uri.removeprefix("test://template/").removesuffix("/data")
        body = json.dumps({"id": id_, "templateTest": True, "data": f"Data for ID: {id_}"})
        contents = types.TextResourceContents(uri=uri, mime_type="application/json", text=body)
    else:
        raise MCPError(-32002, f"unknown resource {uri}")
    return types.ReadResourceResult(contents=[contents])


async def subscribe(ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
    return types.EmptyResult()


async def unsubscribe(ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    return types.EmptyResult()


async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=PROMPTS)


async def get_prompt(ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    args = params.arguments or {}

    def user(content: Any) -> types.PromptMessage:
        return types.PromptMessage(role="user", content=content)

    match params.name:
        case "test_simple_prompt":
            messages = [user(text("This is a simple prompt for testing."))]
        case "test_prompt_with_arguments":
            messages = [user(text(f"Prompt with arguments: arg1='{args.get('arg1')}', arg2='{args.get('arg2')}'"))]
        case "test_prompt_with_embedded_resource":
            messages = [user(embedded(args.get("resourceUri", "test://example-resource"), "text/plain",
                                      "Embedded resource content for testing.")),
                        user(text("Please process the embedded resource above."))]
        case "test_prompt_with_image":
            messages = [user(types.ImageContent(type="image", data=PNG, mime_type="image/png")),
                        user(text("Please analyze the image above."))]
        case _:
            raise MCPError(types.INVALID_PARAMS, f"unknown prompt {params.name}")
    return types.GetPromptResult(messages=messages)


async def complete(ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
    values = [v for v in ("paris", "park", "party") if v.startswith(params.argument.value)]
    return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))


async def set_level(ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
    return types.EmptyResult()


def build() -> Server[Any]:
    schemas = {t.name: t.input_schema for t in TOOLS}
    return Server("manifold-conformance-backend", version="1.0", on_list_tools=list_tools, on_call_tool=call_tool,
                  get_tool_input_schema=schemas.get, on_list_resources=list_resources,
                  on_list_resource_templates=list_templates, on_read_resource=read_resource,
                  on_subscribe_resource=subscribe, on_unsubscribe_resource=unsubscribe,
                  on_list_prompts=list_prompts, on_get_prompt=get_prompt, on_completion=complete,
                  on_set_logging_level=set_level)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="serve streamable HTTP on 127.0.0.1:PORT/mcp")
    args = parser.parse_args()
    uvicorn.run(build().streamable_http_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
