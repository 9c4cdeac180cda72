"""Issue 4: what the gateway relays besides results, as ratios to the same thing done directly.

A call that streams 100 progress notifications (echo server's `progress` tool
over HTTP), and a sampling round trip (server-everything's
`trigger-sampling-request`, the client answering at once), each through the
gateway against the client talking to that backend itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import Client, StdioServerParameters

from bench.common import ROOT, BenchError, Results, interleaved, start_echo_http, start_gateway, stop

AREA = "relay"
STEPS = 100
EVERYTHING = ROOT / ".cache/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"


async def run(res: Results, tmp: Path) -> None:
    await _progress(res, tmp)
    if EVERYTHING.exists():
        await _sampling(res, tmp)
    else:
        res.note(f"relay: {EVERYTHING} missing (make test installs it); the sampling figure is skipped")


async def _progress(res: Results, tmp: Path) -> None:
    echo = start_echo_http(tmp, name="progress")
    gw = start_gateway(tmp, {"echo": {"url": echo.url}})
    try:
        async with Client(gw.url, mode="legacy") as via_client, Client(echo.url, mode="legacy") as direct_client:
            def caller(client: Client, tool: str) -> Any:
                async def call() -> None:
                    seen: list[float] = []

                    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                        seen.append(progress)

                    r = await client.call_tool(tool, {"steps": STEPS}, progress_callback=on_progress)
                    if r.is_error or len(seen) != STEPS:
                        raise BenchError(f"{tool}: {len(seen)} progress notifications of {STEPS}: {r.content}")

                return call

            await interleaved(res, AREA, f"call streaming {STEPS} progress notifications",
                              caller(via_client, "echo__progress"), caller(direct_client, "progress"),
                              "echo server over HTTP, handshake-era client")
    finally:
        stop(gw)
        stop(echo.proc)


async def _sampling(res: Results, tmp: Path) -> None:
    gw = start_gateway(tmp, {"ev": {"command": "node", "args": [str(EVERYTHING), "stdio"]}})

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="ok"),
                                         model="bench")

    direct = StdioServerParameters(command="node", args=[str(EVERYTHING), "stdio"])
    try:
        async with Client(gw.url, mode="legacy", sampling_callback=sampling) as via_client, \
                Client(direct, mode="legacy", sampling_callback=sampling) as direct_client:
            def caller(client: Client, tool: str) -> Any:
                async def call() -> None:
                    r = await client.call_tool(tool, {"prompt": "bench", "maxTokens": 5})
                    if r.is_error:
                        raise BenchError(f"{tool}: {r.content}")

                return call

            await interleaved(res, AREA, "sampling round trip (backend asks, client answers)",
                              caller(via_client, "ev__trigger-sampling-request"),
                              caller(direct_client, "trigger-sampling-request"),
                              "server-everything over stdio, handshake-era client")
    finally:
        stop(gw)
