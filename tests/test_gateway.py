"""The gateway end to end, through real transports: `manifold serve` over streamable HTTP and stdio in
front of our echo server (stdio and HTTP), PyPI's mcp-server-time and the example plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from conftest import BIN, ECHO_SERVER, free_port, stop_group, wait_until
from manifold_example.plugin import ExampleBackend, ExampleConfig
from mcp import Client, MCPError
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from gateway.backends import CallContext
from gateway.testing import ServedGateway, listening, served

SERVER_INFO = "io.modelcontextprotocol/serverInfo"
HEADER_SECRET = "hdr-secret-5e8f0c"
ENV_SECRET = "env-secret-a71d42"
TOKEN = "tok-secret-93bc1e"
TIME = str(BIN / "mcp-server-time")
TIME_ARGS = ["--local-timezone", "UTC"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANIFOLD_")}
    return {**env, **extra}


def stdio_table(name: str, command: str, args: list[str], **extra: str) -> str:
    lines = [f"[backends.{name}]", f"command = {json.dumps(command)}", f"args = {json.dumps(args)}"]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n\n"


def gateway_config(web_url: str) -> str:
    return (
        "[gateway]\ncall_timeout_s = 30\n\n"
        + stdio_table("echo", sys.executable, [ECHO_SERVER, "--name", "echo"],
                      env='{ GIVEN_VAR = "given-value", API_KEY = "${ECHO_SECRET}" }')
        + stdio_table("time", TIME, TIME_ARGS)
        + f'[backends.web]\nurl = "{web_url}"\nheaders = {{ X-Api-Key = "${{WEB_SECRET}}" }}\n\n'
        + '[backends.hello]\ntype = "example"\n\n'
        + stdio_table("slowpoke", sys.executable, [ECHO_SERVER, "--name", "slowpoke"], call_timeout_s="1")
        + '[backends.broken]\ncommand = "/nonexistent/definitely-not-a-command"\n'
    )


ENV_FILE = f"WEB_SECRET={HEADER_SECRET}\nECHO_SECRET={ENV_SECRET}\n"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our echo server over streamable HTTP, as a subprocess in its own process group."""
    port = free_port()
    log = tmp_path_factory.mktemp("web") / "web.log"
    with listening([sys.executable, ECHO_SERVER, "--http", str(port), "--name", "web"], port, log=log):
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def gw(folder: Path, web: str) -> Iterator[ServedGateway]:
    """One gateway for the module: four working backends, one slow-timeout one, one that cannot start."""
    with served(gateway_config(web), folder, env=clean_env(OUTER_ONLY="outer-value"), env_file=ENV_FILE,
                inherit_env=False) as gateway:
        yield gateway


def comparable(result: types.CallToolResult) -> dict[str, Any]:
    """What must come back unchanged: content, structuredContent, isError, _meta (minus the 2026 stamp)."""
    dump = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    meta = {k: v for k, v in (dump.get("_meta") or {}).items() if k != SERVER_INFO}
    return {"content": dump["content"], "structuredContent": dump.get("structuredContent"),
            "isError": bool(result.is_error), "_meta": meta}


async def all_tool_names(client: Client) -> set[str]:
    names: set[str] = set()
    cursor = None
    while True:
        page = await client.list_tools(cursor=cursor)
        names |= {t.name for t in page.tools}
        if (cursor := page.next_cursor) is None:
            return names


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


# -- aggregation and faithful results -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_from_every_backend_aggregated_and_namespaced(gw, mode):
    async with Client(gw.url, mode=mode) as client:
        names = await all_tool_names(client)
    assert {"echo__echo", "echo__slow", "time__get_current_time", "time__convert_time", "web__echo",
            "hello__greet", "hello__digest", "gateway__status"} <= names
    assert not {n for n in names if n.startswith("broken__")}
    prefixes = {n.split("__", 1)[0] for n in names}
    assert prefixes == {"echo", "time", "web", "hello", "slowpoke", "gateway"}


CALLS = [
    ("echo", "echo", {"message": "héllo, wörld"}),
    ("echo", "fail", {}),
    ("echo", "progress", {"steps": 2}),
    ("time", "convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
    ("web", "echo", {"message": "over http"}),
    ("web", "fail", {}),
    ("hello", "greet", {"name": "Ada"}),
    ("hello", "greet", {"name": " "}),
    ("hello", "digest", {"text": "abc", "algorithm": "md5"}),
]


async def direct_results(web: str) -> list[dict[str, Any]]:
    """The same calls made straight to each backend, with no gateway in between."""
    out: list[dict[str, Any]] = []
    echo = StdioServerParameters(command=sys.executable, args=[ECHO_SERVER, "--name", "echo"])
    time = StdioServerParameters(command=TIME, args=TIME_ARGS)
    example = ExampleBackend("hello", ExampleConfig())
    async with (
        Client(echo, mode="legacy") as e,
        Client(time, mode="legacy") as t,
        Client(web, mode="legacy") as w,
    ):
        clients = {"echo": e, "time": t, "web": w}
        for backend, name, args in CALLS:
            if backend == "hello":
                out.append(comparable(await example.call_tool(name, args, CallContext())))
            else:
                out.append(comparable(await clients[backend].call_tool(name, args)))
    return out


@pytest.fixture(scope="module")
def direct(web: str) -> list[dict[str, Any]]:
    return anyio.run(direct_results, web)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_each_result_identical_to_calling_the_backend_directly(gw, direct, mode):
    async with Client(gw.url, mode=mode) as client:
        through = [comparable(await client.call_tool(f"{b}__{n}", args)) for b, n, args in CALLS]
    for (backend, name, _), mine, theirs in zip(CALLS, through, direct, strict=True):
        assert mine == theirs, f"{backend}__{name}"
    assert direct[0]["structuredContent"] == {"echo": "héllo, wörld", "server": "echo"}
    assert direct[0]["_meta"] == {"test/server": "echo"}  # the comparison covers a real _meta ...
    assert direct[1]["isError"] and direct[7]["isError"]  # ... and real isError results


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_both_client_eras_over_http(gw, mode):
    async with Client(gw.url, mode=mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        result = await client.call_tool("web__echo", {"message": mode})
        assert result.structured_content == {"echo": mode, "server": "web"}
        now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        assert not now.is_error and now.structured_content["timezone"] == "UTC"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_both_client_eras_over_stdio(tmp_path, web, mode):
    config = tmp_path / "stdio.toml"
    config.write_text(stdio_table("echo", sys.executable, [ECHO_SERVER, "--name", "echo"])
                      + f'[backends.web]\nurl = "{web}"\n\n[backends.hello]\ntype = "example"\n')
    env_file = tmp_path / "empty.env"
    env_file.touch()
    params = StdioServerParameters(
        command=str(BIN / "manifold"),
        args=["serve", "--stdio", "--config", str(config), "--env-file", str(env_file)], cwd=str(tmp_path))
    async with Client(params, mode=mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        names = await all_tool_names(client)
        assert {"echo__echo", "web__echo", "hello__greet", "gateway__status"} <= names
        for tool, server in (("echo__echo", "echo"), ("web__echo", "web")):
            result = await client.call_tool(tool, {"message": f"stdio {mode}"})
            assert result.structured_content == {"echo": f"stdio {mode}", "server": server}
        assert text(await client.call_tool("hello__greet", {"name": "Ada"})) == "Hello, Ada!"


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_arguments_are_validated_before_the_backend(gw, mode):
    async with Client(gw.url, mode=mode) as client:
        # The echo backend would answer {"echo": "5"}: an isError result proves the call never reached it.
        result = await client.call_tool("echo__echo", {"message": 5})
        assert result.is_error and "invalid arguments" in text(result) and "message" in text(result)
        assert "5 is not of type 'string'" in text(result)
        missing = await client.call_tool("hello__greet", {})
        assert missing.is_error and "'name' is a required property" in text(missing)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_unknown_tool_error_names_the_closest(gw, mode):
    async with Client(gw.url, mode=mode) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("echo__ecko", {"message": "x"})
    assert info.value.error.code == types.INVALID_PARAMS
    assert "echo__ecko" in info.value.error.message and "echo__echo" in info.value.error.message


async def test_call_past_its_timeout_is_cancelled_at_the_backend(gw, tmp_path):
    marker = tmp_path / "marker"
    async with Client(gw.url, mode="legacy") as client:
        result = await client.call_tool("slowpoke__slow", {"seconds": 120, "marker": str(marker)})
    assert result.is_error
    assert "timed out after 1s" in text(result) and "slowpoke" in text(result)
    wait_until(lambda: marker.exists() and marker.read_text() == "cancelled", 30,
               "the backend's handler to be cancelled")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_is_error_results_and_json_rpc_errors_pass_through(gw, mode):
    async with Client(gw.url, mode=mode) as client:
        for tool in ("echo__fail", "web__fail"):
            failed = await client.call_tool(tool, {})
            assert failed.is_error and text(failed) == "this tool always fails"
        for tool in ("echo__crash", "web__crash"):
            with pytest.raises(MCPError) as info:
                await client.call_tool(tool, {})
            assert info.value.error.code == types.INTERNAL_ERROR
            assert info.value.error.message == "crash requested"
        # the backend is not held against it: the next call works
        after = await client.call_tool("echo__echo", {"message": "still"})
        assert after.structured_content["echo"] == "still"


async def test_stdio_child_gets_only_the_environment_it_names(gw):
    async with Client(gw.url, mode="legacy") as client:
        async def env(name: str) -> str:
            return text(await client.call_tool("echo__env", {"name": name}))

        assert await env("GIVEN_VAR") == "given-value"
        assert await env("OUTER_ONLY") == "<unset>"  # in the gateway's environment, not named in `env`
        assert await env("MANIFOLD_PORT") == "<unset>"
        assert await env("WEB_SECRET") == "<unset>"  # an env-file value of another backend
        assert await env("PATH") != "<unset>" and await env("HOME") != "<unset>"


async def test_500_concurrent_calls_over_10_sessions_each_get_their_own_answer(gw):
    limit = anyio.CapacityLimiter(100)
    answers: dict[str, dict[str, Any] | None] = {}

    async def session(index: int) -> None:
        async with Client(gw.url, mode="legacy" if index % 2 else "auto") as client:
            async def one(call: int) -> None:
                message = f"s{index}-c{call}"
                tool = "echo__echo" if call % 2 else "web__echo"
                async with limit:
                    result = await client.call_tool(tool, {"message": message})
                answers[message] = result.structured_content

            async with anyio.create_task_group() as calls:
                for call in range(50):
                    calls.start_soon(one, call)

    async with anyio.create_task_group() as tg:
        for index in range(10):
            tg.start_soon(session, index)
    assert len(answers) == 500
    for message, structured in answers.items():
        server = "echo" if int(message.rsplit("c", 1)[1]) % 2 else "web"
        assert structured == {"echo": message, "server": server}, message


# -- operations endpoints ------------------------------------------------------------------------

STATUS_KEYS = {"name", "type", "state", "tools", "last_error", "latency_ms", "restarts", "since"}


def test_healthz_and_readyz(gw):
    r = httpx2.get(f"{gw.base}/healthz", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = httpx2.get(f"{gw.base}/readyz", timeout=10)
    assert r.status_code == 200 and r.json()["ready"] is True


def test_status_shape_and_the_backend_that_failed_to_start(gw):
    status = gw.status()
    assert isinstance(status["version"], str) and status["version"]
    backends = {b["name"]: b for b in status["backends"]}
    assert set(backends) == {"echo", "time", "web", "hello", "slowpoke", "broken"}
    for b in backends.values():
        assert set(b) >= STATUS_KEYS, b
        assert isinstance(b["tools"], int) and isinstance(b["restarts"], int) and isinstance(b["since"], str)
    assert {backends[n]["type"] for n in ("echo", "time", "slowpoke", "broken")} == {"stdio"}
    assert backends["web"]["type"] == "http" and backends["hello"]["type"] == "example"
    for name in ("echo", "time", "web", "hello"):
        assert backends[name]["state"] in ("healthy", "degraded") and backends[name]["tools"] > 0
    broken = backends["broken"]
    assert broken["state"] == "unavailable" and broken["tools"] == 0
    last_error = broken["last_error"] or ""
    assert "command not found" in last_error and "definitely-not-a-command" in last_error
    assert "broken" in gw.log.read_text() and "WARNING" in gw.log.read_text()


async def test_status_tool_returns_the_status(gw):
    async with Client(gw.url, mode="legacy") as client:
        result = await client.call_tool("gateway__status", {})
    structured = result.structured_content
    assert structured["version"] == gw.status()["version"]
    assert {b["name"] for b in structured["backends"]} == {b["name"] for b in gw.status()["backends"]}
    assert "broken: unavailable" in text(result)


async def test_metrics_are_prometheus_text(gw):
    async with Client(gw.url, mode="legacy") as client:
        await client.call_tool("hello__greet", {"name": "metrics"})
    r = httpx2.get(f"{gw.base}/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    body = r.text
    assert "# TYPE manifold_tool_calls_total counter" in body
    assert 'manifold_tool_calls_total{backend="hello",outcome="ok",tool="hello__greet"}' in body
    assert 'manifold_tool_call_seconds_bucket{backend="hello",le="0.001",tool="hello__greet"}' in body
    assert 'manifold_backend_state{backend="broken",state="unavailable"} 1.0' in body


# -- security ---------------------------------------------------------------------------------


async def test_bearer_token_required_when_configured(serve_gateway):
    gw = serve_gateway('[backends.hello]\ntype = "example"\n', env={"MANIFOLD_AUTH_TOKEN": f"other, {TOKEN}"})
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2026-07-28"}
    none = httpx2.post(gw.url, json=body, headers=headers, timeout=10)
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx2.post(gw.url, json=body, headers={**headers, "Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    assert httpx2.get(f"{gw.base}/healthz", timeout=10).status_code == 200  # probes need no token
    for mode in ("legacy", "auto"):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
            Client(streamable_http_client(gw.url, http_client=http), mode=mode) as client,
        ):
            result = await client.call_tool("hello__greet", {"name": "Token"})
            assert text(result) == "Hello, Token!"
    for where in (httpx2.get(f"{gw.base}/status", timeout=10).text, gw.log.read_text()):
        assert TOKEN not in where


def test_non_loopback_without_token_is_refused(tmp_path):
    config = tmp_path / "m.toml"
    config.write_text('[backends.hello]\ntype = "example"\n')
    env_file = tmp_path / "empty.env"
    env_file.touch()
    proc = subprocess.Popen(
        [str(BIN / "manifold"), "serve", "--host", "0.0.0.0", "--port", str(free_port()),
         "--config", str(config), "--env-file", str(env_file)],
        env=clean_env(COLUMNS="300"), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        stop_group(proc)
    assert proc.returncode == 2, stderr
    assert b"MANIFOLD_AUTH_TOKEN" in stderr and b"0.0.0.0" in stderr


def test_secrets_never_reach_status_metrics_or_the_log(gw):
    # The module's calls have run by now (this test is last); nothing they did may have leaked a secret.
    exposed = [
        httpx2.get(f"{gw.base}/status", timeout=10).text,
        httpx2.get(f"{gw.base}/metrics", timeout=10).text,
        gw.log.read_text(),
    ]
    assert "echo" in exposed[0] and "web" in exposed[0]
    for where in exposed:
        assert HEADER_SECRET not in where and ENV_SECRET not in where
