"""A small MCP server for tests and benchmarks, written with the mcp SDK's low-level Server.

    python tests/servers/echo_server.py                     # stdio
    python tests/servers/echo_server.py --http 8801         # streamable HTTP on 127.0.0.1:8801/mcp
    python tests/servers/echo_server.py --extra-tools 50    # plus tool_0 ... tool_49

Fault injection (tests/test_health.py): `--extra-tools-file PATH` reads the
number of extra tools from PATH at start-up (so a restart can list fewer);
`--refuse-if PATH` exits at once while PATH exists (a backend that cannot
start); `--helper PIDFILE` starts a long-lived helper process (a descendant
that outlives a kill -9 of the server) and appends its pid to PIDFILE; `--tag`
is ignored, a marker to find the processes in /proc.

Tools: echo, slow, fail, crash, progress, env, pid, grow (adds a tool and sends
list_changed), garbage (writes a non-JSON line to stdout on stdio), log (sends a
log message at a given level during the call).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server


def text(value: str) -> list[types.TextContent]:
    return [types.TextContent(type="text", text=value)]


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or []}


BASE_TOOLS = [
    types.Tool(name="echo", description="Echo a message back", input_schema=obj({"message": {"type": "string"}}, ["message"]),
               annotations=types.ToolAnnotations(read_only_hint=True)),
    types.Tool(name="slow", description="Sleep, then answer", input_schema=obj({"seconds": {"type": "number"}, "marker": {"type": "string"},
                                                                                 "started": {"type": "string"}}, ["seconds"])),
    types.Tool(name="fail", description="Return an isError result", input_schema=obj({})),
    types.Tool(name="crash", description="Raise inside the handler (a JSON-RPC error)", input_schema=obj({})),
    types.Tool(name="progress", description="Report progress N times", input_schema=obj({"steps": {"type": "integer"}}, ["steps"])),
    types.Tool(name="env", description="Read an environment variable", input_schema=obj({"name": {"type": "string"}}, ["name"])),
    types.Tool(name="pid", description="This server's process id", input_schema=obj({})),
    types.Tool(name="grow", description="Add a tool and send list_changed", input_schema=obj({})),
    types.Tool(name="garbage", description="Write a non-JSON line to stdout", input_schema=obj({})),
    types.Tool(name="flaky_read", description="Read-only; fails the first call for each key, then answers",
               input_schema=obj({"key": {"type": "string"}}, ["key"]),
               annotations=types.ToolAnnotations(read_only_hint=True)),
    types.Tool(name="ask", description="2026-07-28 connections only: elicit a name, then greet it",
               input_schema=obj({})),
    types.Tool(name="log", description="Send a log message at a level during the call",
               input_schema=obj({"level": {"type": "string"}, "message": {"type": "string"}}, ["level", "message"])),
]


def build(extra_tools: int, name: str) -> Server[Any]:
    grown: list[types.Tool] = []
    failed_once: set[str] = set()
    extra = [types.Tool(name=f"tool_{i}", description=f"Extra tool {i}", input_schema=obj({"message": {"type": "string"}}))
             for i in range(extra_tools)]

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[*BASE_TOOLS, *extra, *grown])

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        args = params.arguments or {}
        match params.name:
            case "echo" | "grown":
                message = str(args.get("message", ""))
                return types.CallToolResult(content=text(message), structured_content={"echo": message, "server": name},
                                            _meta={"test/server": name})
            case "slow":
                marker = args.get("marker")
                if args.get("started"):  # a file that tells a test the call is in flight
                    with open(str(args["started"]), "w") as f:
                        f.write("started")
                try:
                    await anyio.sleep(float(args["seconds"]))
                except anyio.get_cancelled_exc_class():
                    if marker:
                        with open(marker, "w") as f:
                            f.write("cancelled")
                    raise
                return types.CallToolResult(content=text(f"slept {args['seconds']}"))
            case "fail":
                return types.CallToolResult(content=text("this tool always fails"), is_error=True)
            case "crash":
                raise MCPError(types.INTERNAL_ERROR, "crash requested")
            case "progress":
                steps = int(args["steps"])
                for i in range(steps):
                    await ctx.session.report_progress(i + 1, steps, f"step {i + 1}")
                return types.CallToolResult(content=text(f"done {steps}"))
            case "env":
                return types.CallToolResult(content=text(os.environ.get(str(args["name"]), "<unset>")))
            case "pid":
                return types.CallToolResult(content=text(str(os.getpid())))
            case "grow":
                grown.append(types.Tool(name="grown", description="A tool added at run time", input_schema=obj({"message": {"type": "string"}})))
                await ctx.session.send_tool_list_changed()
                return types.CallToolResult(content=text("grown"))
            case "flaky_read":
                key = str(args["key"])
                if key not in failed_once:
                    failed_once.add(key)
                    return types.CallToolResult(content=text(f"first call for {key} fails"), is_error=True)
                return types.CallToolResult(content=text(f"read {key}"))
            case "ask":  # the 2026-07-28 multi-round-trip: ask, then answer from the client's reply
                reply = (params.input_responses or {}).get("who")
                if isinstance(reply, types.ElicitResult) and reply.content:
                    return types.CallToolResult(content=text(f"hello {reply.content.get('name')} "
                                                             f"(state {params.request_state})"))
                ask = types.ElicitRequest(params=types.ElicitRequestFormParams(
                    message="Who are you?",
                    requested_schema={"type": "object", "properties": {"name": {"type": "string"}}}))
                return types.InputRequiredResult(input_requests={"who": ask}, request_state="asked-once")
            case "garbage":
                os.write(int(os.environ.get("ECHO_STDOUT_FD", "1")), b"this is not json\n")
                return types.CallToolResult(content=text("wrote garbage"))
            case "log":
                level = args["level"]
                await ctx.session.send_log_message(level, args["message"], related_request_id=ctx.request_id)
                return types.CallToolResult(content=text(f"logged at {level}"))
        if params.name.startswith("tool_"):
            return types.CallToolResult(content=text(str(args.get("message", params.name))))
        raise MCPError(types.INVALID_PARAMS, f"unknown tool {params.name}")

    async def list_resources(ctx: Any, params: types.PaginatedRequestParams) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[types.Resource(uri="test://shared", name="shared"),
                                                    types.Resource(uri=f"test://{name}/own", name="own")])

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=str(params.uri), text=f"{name}:{params.uri}")])

    async def list_prompts(ctx: Any, params: types.PaginatedRequestParams) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[types.Prompt(name="hello", arguments=[types.PromptArgument(name="who", required=True)])])

    async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        who = (params.arguments or {}).get("who", "?")
        return types.GetPromptResult(messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=f"Hello {who} from {name}"))])

    return Server(name, version="1.0", on_list_tools=list_tools, on_call_tool=call_tool,
                  on_list_resources=list_resources, on_read_resource=read_resource,
                  on_list_prompts=list_prompts, on_get_prompt=get_prompt,
                  get_tool_input_schema=lambda n: next((t.input_schema for t in [*BASE_TOOLS, *extra] if t.name == n), None))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve streamable HTTP on this port")
    parser.add_argument("--extra-tools", type=int, default=0)
    parser.add_argument("--name", default="echo")
    parser.add_argument("--extra-tools-file", help="read --extra-tools from this file at start-up")
    parser.add_argument("--refuse-if", help="exit with status 3 at once while this file exists")
    parser.add_argument("--helper", help="start a sleeping helper process; append its pid to this file")
    parser.add_argument("--tag", help="ignored: a marker that shows in /proc/PID/cmdline")
    args = parser.parse_args()
    if args.refuse_if and os.path.exists(args.refuse_if):
        sys.exit(3)
    if args.helper:
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", f"helper-of-{args.tag}"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(args.helper, "a") as f:
            f.write(f"{helper.pid}\n")
    extra = int(open(args.extra_tools_file).read()) if args.extra_tools_file else args.extra_tools
    server = build(extra, args.name)
    if args.http is not None:
        import uvicorn
        uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=args.http, log_level="warning")
        return
    from mcp.server.stdio import stdio_server

    async def run() -> None:
        os.environ["ECHO_STDOUT_FD"] = str(os.dup(1))
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options(NotificationOptions(tools_changed=True)))

    anyio.run(run)


if __name__ == "__main__":
    sys.exit(main())
