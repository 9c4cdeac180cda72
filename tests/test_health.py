"""Health and graceful degradation, by fault injection against real processes through a running gateway.

Every test runs `manifold serve` (the `serve_gateway` fixture) with the health
monitor on a short interval, talks to it as a handshake-era client (which gets
`list_changed` pushed), breaks one backend for real (kill -9, SIGSTOP, garbage
on stdout, a port with nothing behind it, a restart with fewer tools) and
checks `/status`, what the client sees, the recovery, and that another backend
served throughout. Waits poll with a deadline; no assertion is about speed: a
"fast" failure is one that returns while the call timeout is 60 s and the
whole test is bounded far below it.

A backend that must stay down does so through echo_server's `--refuse-if
FILE` (it exits at once while FILE exists), so restarts fail until the test
removes the file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types as types
import pytest
from conftest import ECHO_SERVER, echo_backend, free_port, stop_group
from mcp import Client, MCPError

from gateway.testing import ServedGateway

T = TypeVar("T")

FAST = {"MANIFOLD_RESTART_BACKOFF_S": "0.05"}
"""Restart almost at once: the tests wait for recoveries, not for backoff."""


# -- config and process helpers


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, numbers, booleans and lists of them are the same in TOML


def config(backends: Mapping[str, Mapping[str, object]], **gateway: object) -> str:
    tables = {"health_interval_s": 0.2, "call_timeout_s": 60, **gateway}
    lines = ["[gateway]", *(f"{k} = {_toml_value(v)}" for k, v in tables.items())]
    for name, table in backends.items():
        lines += ["", f"[backends.{name}]", *(f"{k} = {_toml_value(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


def echo(name: str, *args: str) -> dict[str, object]:
    """echo_server over stdio with extra arguments."""
    table = echo_backend(name)
    table["args"] = [*table["args"], *args]  # type: ignore[misc]
    return table


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return b""


def processes_with(marker: str) -> set[int]:
    """Live processes whose command line carries `marker` (reading /proc; never used to kill by name)."""
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return {pid for pid in pids if marker.encode() in cmdline(pid)}


def zombie_children(parent: int) -> set[int]:
    found = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and (stat := proc_stat(int(p.name))) is not None and stat == ("Z", parent):
            found.add(int(p.name))
    return found


def start_http_echo(port: int, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, ECHO_SERVER, "--http", str(port), "--name", name],
                            start_new_session=True)


def kill_if_ours(pid: int, marker: str) -> None:
    """Teardown for a process a test stopped or leaked: by pid, and only if it is still ours."""
    if marker.encode() in cmdline(pid):
        for sig in (signal.SIGKILL, signal.SIGCONT):
            with suppress(ProcessLookupError):
                os.kill(pid, sig)


# -- client helpers


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 30.0) -> T:
    """Poll `probe` until it returns something truthy; fail after a generous deadline."""
    with anyio.move_on_after(timeout_s):
        while True:
            value = await probe()
            if value:
                return value
            await anyio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def now(check: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """A synchronous check (a file, /proc) as a probe for `eventually`."""
    async def probe() -> T:
        return check()

    return probe


async def backend_status(gw: ServedGateway, name: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(timeout=10) as http:
        status = (await http.get(f"{gw.base}/status")).json()
    return next(b for b in status["backends"] if b["name"] == name)  # type: ignore[no-any-return]


def in_state(gw: ServedGateway, name: str, state: str, *,
             restarts: int = 0) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    async def probe() -> dict[str, Any] | None:
        b = await backend_status(gw, name)
        return b if b["state"] == state and b["restarts"] >= restarts else None

    return probe


async def ready(gw: ServedGateway) -> int:
    async with httpx2.AsyncClient(timeout=10) as http:
        return (await http.get(f"{gw.base}/readyz")).status_code


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


@dataclass
class Notices:
    """What the gateway pushed to the client."""

    tools_changed: int = 0

    async def handle(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.tools_changed += 1


@asynccontextmanager
async def connect(gw: ServedGateway) -> AsyncIterator[tuple[Client, Notices]]:
    """A handshake-era client: it gets list_changed pushed on its session."""
    notices = Notices()
    async with Client(gw.url, mode="legacy", cache=None, message_handler=notices.handle) as client:
        yield client, notices


async def tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


async def pid_of(client: Client, tool: str = "echo__pid") -> int:
    result = await client.call_tool(tool, {})
    assert not result.is_error, text(result)
    return int(text(result))


async def new_pid(client: Client, old: int, tool: str = "echo__pid") -> int:
    """The backend's pid once a call reaches a process other than `old`."""
    async def probe() -> int | None:
        result = await client.call_tool(tool, {})
        return None if result.is_error or int(text(result)) == old else int(text(result))

    return await eventually(probe, f"{tool} to answer from a new process")


async def notifications_flow(client: Client, notices: Notices, grow_tool: str) -> None:
    """Make a backend send list_changed and wait for it to reach the client: the push channel is live."""
    before = notices.tools_changed
    assert not (await client.call_tool(grow_tool, {})).is_error

    async def probe() -> bool:
        return notices.tools_changed > before

    await eventually(probe, "list_changed after grow")


@dataclass
class Served:
    calls: int = 0
    errors: list[str] = field(default_factory=list)


@asynccontextmanager
async def keeps_serving(client: Client, tool: str) -> AsyncIterator[Served]:
    """Call `tool` over and over while the body breaks another backend; every call must succeed."""
    served = Served()

    async def loop() -> None:
        while True:
            result = await client.call_tool(tool, {"message": "still here"})
            served.calls += 1
            if result.is_error or text(result) != "still here":
                served.errors.append(text(result))
            await anyio.sleep(0.05)  # pacing, not synchronisation

    async with anyio.create_task_group() as tg:
        tg.start_soon(loop)
        yield served
        tg.cancel_scope.cancel()
    assert served.errors == [], f"{tool} failed while another backend was broken"
    assert served.calls >= 2, f"{tool} was called only {served.calls} times"


# -- 1. kill -9 between calls


async def test_killed_child_fails_fast_then_recovers(serve_gateway: Any, tmp_path: Path) -> None:
    marker, refuse = f"m-{uuid.uuid4().hex}", tmp_path / "echo.down"
    gw = serve_gateway(config({"echo": echo("echo", "--tag", marker, "--refuse-if", str(refuse)),
                               "other": echo("other")}), env=FAST)
    with anyio.fail_after(40):
        async with connect(gw) as (client, _), keeps_serving(client, "other__echo") as served:
            pid = await pid_of(client)
            assert (await backend_status(gw, "echo"))["state"] == "healthy"
            refuse.touch()  # restarts fail until the file is gone
            os.kill(pid, signal.SIGKILL)

            down = await eventually(in_state(gw, "echo", "unavailable"), "echo to be unavailable")
            assert down["reason"] and down["last_error"]
            result = await client.call_tool("echo__echo", {"message": "hi"})
            after = await backend_status(gw, "echo")
            message = text(result)
            assert result.is_error, message
            assert "echo__echo cannot be served" in message
            assert "backend 'echo' is unavailable since" in message
            assert down["since"][11:19] in message  # the time it went down, as HH:MM:SS
            assert down["reason"] in message or after["reason"] in message  # why (a restart may fail between)
            assert "No fallback is configured" in message  # what else can serve: nothing
            assert "echo__echo" in await tool_names(client)  # by default a down backend's tools stay listed
            status_tool = await client.call_tool("gateway__status", {})
            rows = {b["name"]: b for b in (status_tool.structured_content or {})["backends"]}
            assert rows["echo"]["state"] == "unavailable" and rows["other"]["state"] == "healthy"

            refuse.unlink()
            back = await eventually(in_state(gw, "echo", "healthy", restarts=1), "echo to recover")
            assert back["reason"] == "ok"
            assert await new_pid(client, pid) != pid
            assert text(await client.call_tool("echo__echo", {"message": "back"})) == "back"
            await eventually(now(lambda: proc_stat(pid) is None), f"the killed process {pid} to be reaped")
        assert served.calls >= 5


# -- 2. kill -9 during a call


async def test_call_in_flight_ends_promptly_when_its_backend_dies(serve_gateway: Any, tmp_path: Path) -> None:
    gw = serve_gateway(config({"echo": echo("echo"), "other": echo("other")}), env=FAST)
    started = tmp_path / "started"
    outcome: list[types.CallToolResult] = []
    async with connect(gw) as (client, _), keeps_serving(client, "other__echo"):
        pid = await pid_of(client)

        async def slow_call() -> None:
            outcome.append(await client.call_tool("echo__slow", {"seconds": 30, "started": str(started)}))

        with anyio.fail_after(15):  # the call sleeps 30 s: ending before that is the point
            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_call)
                await eventually(now(started.exists), "the slow call to be in flight")
                os.kill(pid, signal.SIGKILL)
        message = text(outcome[0])
        assert outcome[0].is_error, message
        assert "echo__slow" in message and "'echo'" in message
        assert "closed" in message or "unavailable" in message, message

        await eventually(in_state(gw, "echo", "healthy", restarts=1), "echo to recover")
        await new_pid(client, pid)
        assert text(await client.call_tool("echo__echo", {"message": "after"})) == "after"


# -- 3. a backend that hangs


async def test_hung_backend_is_degraded_then_restarted(serve_gateway: Any) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    gw = serve_gateway(config({"echo": echo("echo", "--tag", marker), "other": echo("other")}), env=FAST)
    async with connect(gw) as (client, _), keeps_serving(client, "other__echo"):
        pid = await pid_of(client)
        os.kill(pid, signal.SIGSTOP)  # alive, answering nothing
        try:
            stuck: list[types.CallToolResult] = []

            async def stuck_call() -> None:
                stuck.append(await client.call_tool("echo__echo", {"message": "anyone?"}))

            with anyio.fail_after(45):  # well under the 60 s call timeout
                async with anyio.create_task_group() as tg:
                    tg.start_soon(stuck_call)
                    hung = await eventually(in_state(gw, "echo", "degraded"), "echo to be degraded", 20)
                    assert hung["reason"] == "health check failed: no answer within 1s"
                    await eventually(in_state(gw, "echo", "healthy", restarts=1), "echo to be restarted")
            assert stuck[0].is_error and "'echo'" in text(stuck[0]), text(stuck[0])
            assert await new_pid(client, pid) != pid
            await eventually(now(lambda: proc_stat(pid) is None), f"the hung process {pid} to be gone")
            with pytest.raises(ProcessLookupError):
                os.killpg(pid, 0)  # and its whole process group
        finally:
            kill_if_ours(pid, marker)


# -- 4. garbage on stdout


async def test_garbage_on_stdout_is_survived(serve_gateway: Any) -> None:
    gw = serve_gateway(config({"echo": echo("echo"), "other": echo("other")}), env=FAST)
    async with connect(gw) as (client, _), keeps_serving(client, "other__echo"):
        pid = await pid_of(client)
        for _ in range(5):
            result = await client.call_tool("echo__garbage", {})
            assert not result.is_error and text(result) == "wrote garbage"
            assert text(await client.call_tool("echo__echo", {"message": "clean"})) == "clean"
        echo_row = await backend_status(gw, "echo")
        assert echo_row["state"] == "healthy" and echo_row["restarts"] == 0
        assert await pid_of(client) == pid  # the same process kept serving
    assert gw.proc.poll() is None
    assert "not MCP" in gw.log.read_text()  # reported, not swallowed


# -- 5. a slow backend


async def test_slow_call_times_out_and_the_backend_stays_up(serve_gateway: Any, tmp_path: Path) -> None:
    slow = echo("echo") | {"call_timeout_s": 1}
    gw = serve_gateway(config({"echo": slow, "other": echo("other")}), env=FAST)
    cancelled = tmp_path / "cancelled"
    with anyio.fail_after(30):
        async with connect(gw) as (client, _), keeps_serving(client, "other__echo"):
            pid = await pid_of(client)
            result = await client.call_tool("echo__slow", {"seconds": 30, "marker": str(cancelled)})
            assert result.is_error
            assert "echo__slow timed out after 1s" in text(result) and "'echo'" in text(result)
            await eventually(now(cancelled.exists), "the backend to be told to cancel the call")

            row = await backend_status(gw, "echo")
            assert row["state"] in ("healthy", "degraded") and row["restarts"] == 0, row
            assert text(await client.call_tool("echo__echo", {"message": "fine"})) == "fine"
            await eventually(in_state(gw, "echo", "healthy"), "echo to be healthy after a good call")
            assert await pid_of(client) == pid


# -- 6. an http backend down at start


async def test_http_backend_down_at_start_comes_up_later(serve_gateway: Any) -> None:
    port = free_port()  # nothing listens there yet
    web = {"url": f"http://127.0.0.1:{port}/mcp"}
    gw = serve_gateway(config({"web": web, "other": echo("other")}), env=FAST)
    assert await ready(gw) == 200  # ready: the first attempt failed, the gateway serves the rest
    down = await backend_status(gw, "web")
    assert down["state"] == "unavailable" and str(port) in down["reason"], down
    server: subprocess.Popen[bytes] | None = None
    try:
        with anyio.fail_after(60):
            async with connect(gw) as (client, notices), keeps_serving(client, "other__echo"):
                assert not any(n.startswith("web__") for n in await tool_names(client))
                await notifications_flow(client, notices, "other__grow")
                before = notices.tools_changed
                server = start_http_echo(port, "web")
                up = await eventually(in_state(gw, "web", "healthy", restarts=1), "web to connect")
                assert up["tools"] >= 9

                async def told() -> bool:
                    return notices.tools_changed > before

                await eventually(told, "list_changed for web's tools")
                assert "web__echo" in await tool_names(client)
                assert text(await client.call_tool("web__echo", {"message": "late"})) == "late"
    finally:
        if server is not None:
            stop_group(server)


# -- 7. a restart with fewer tools


async def test_restart_with_fewer_tools_is_degraded(serve_gateway: Any, tmp_path: Path) -> None:
    count = tmp_path / "extra-tools"
    count.write_text("3")
    shrinking = echo("echo", "--extra-tools-file", str(count))
    gw = serve_gateway(config({"echo": shrinking, "other": echo("other")}), env=FAST)
    with anyio.fail_after(40):
        async with connect(gw) as (client, notices), keeps_serving(client, "other__echo"):
            full = await backend_status(gw, "echo")
            assert full["state"] == "healthy" and {"echo__tool_0", "echo__tool_2"} <= await tool_names(client)
            await notifications_flow(client, notices, "other__grow")
            before = notices.tools_changed

            count.write_text("1")
            pid = await pid_of(client)
            os.kill(pid, signal.SIGKILL)
            fewer = await eventually(in_state(gw, "echo", "degraded", restarts=1), "echo back, degraded")
            assert fewer["tools"] == full["tools"] - 2
            assert fewer["reason"] == f"lists {fewer['tools']} tools, had {full['tools']}"

            async def told() -> bool:
                return notices.tools_changed > before

            await eventually(told, "list_changed for the lost tools")
            names = await tool_names(client)
            assert "echo__tool_0" in names and "echo__tool_2" not in names
            assert text(await client.call_tool("echo__echo", {"message": "still"})) == "still"
            assert (await backend_status(gw, "echo"))["state"] == "degraded"  # a good call does not hide it


# -- 8. fallbacks


async def test_fallbacks_serve_while_the_primary_is_down(serve_gateway: Any, tmp_path: Path) -> None:
    refuse = tmp_path / "echo.down"
    primary = echo("echo", "--refuse-if", str(refuse))
    primary["fallbacks"] = {"echo": {"tool": "greeter__greet", "arguments": {"message": "name"}}}
    gw = serve_gateway(config({
        "echo": primary,
        "files": echo("files") | {"fallback_for": ["echo"]},  # same tool names: serves all of echo's tools
        "greeter": {"type": "example"},
    }), env=FAST)
    with anyio.fail_after(40):
        async with connect(gw) as (client, _), keeps_serving(client, "files__echo"):
            direct = await client.call_tool("echo__echo", {"message": "hi"})
            assert text(direct) == "hi" and "manifold/degraded" not in (direct.meta or {})
            files_pid = await pid_of(client, "files__pid")
            refuse.touch()
            os.kill(await pid_of(client), signal.SIGKILL)
            await eventually(in_state(gw, "echo", "unavailable"), "echo to be unavailable")

            # per-tool fallback, with an argument renamed: echo(message) -> greet(name)
            result = await client.call_tool("echo__echo", {"message": "hi"})
            assert not result.is_error, text(result)
            notice, answer = (c.text for c in result.content if isinstance(c, types.TextContent))
            assert notice.startswith("[degraded] backend 'echo' is unavailable since")
            assert notice.endswith("served by greeter__greet instead.")
            assert answer == "Hello, hi!"
            degraded = (result.meta or {})["manifold/degraded"]
            assert degraded["primary"] == "echo__echo" and degraded["backend"] == "echo"
            assert degraded["served_by"] == "greeter__greet" and "unavailable" in degraded["reason"]

            # fallback_for: a tool without its own fallback goes to the same-named tool of `files`
            pid_result = await client.call_tool("echo__pid", {})
            assert not pid_result.is_error
            assert pid_result.content[-1].text == str(files_pid)  # type: ignore[union-attr]
            assert (pid_result.meta or {})["manifold/degraded"]["served_by"] == "files__pid"

            refuse.unlink()
            await eventually(in_state(gw, "echo", "healthy", restarts=1), "echo to recover")
            again = await client.call_tool("echo__echo", {"message": "hi"})
            assert text(again) == "hi" and "manifold/degraded" not in (again.meta or {})


# -- 9. hiding a down backend's tools


async def test_hide_unavailable_hides_and_restores_tools(serve_gateway: Any, tmp_path: Path) -> None:
    refuse = tmp_path / "echo.down"
    gw = serve_gateway(config({"echo": echo("echo", "--refuse-if", str(refuse)), "other": echo("other")}),
                       env={**FAST, "MANIFOLD_HIDE_UNAVAILABLE": "true"})
    with anyio.fail_after(40):
        async with connect(gw) as (client, notices), keeps_serving(client, "other__echo"):
            assert "echo__echo" in await tool_names(client)
            await notifications_flow(client, notices, "other__grow")
            before = notices.tools_changed
            refuse.touch()
            os.kill(await pid_of(client), signal.SIGKILL)

            async def hidden() -> bool:
                return notices.tools_changed > before and "echo__echo" not in await tool_names(client)

            await eventually(hidden, "echo's tools to be hidden, with list_changed")
            assert (await backend_status(gw, "echo"))["state"] == "unavailable"
            assert "other__echo" in await tool_names(client)
            with pytest.raises(MCPError, match="echo__echo"):
                await client.call_tool("echo__echo", {"message": "hi"})

            before = notices.tools_changed
            refuse.unlink()

            async def shown() -> bool:
                return notices.tools_changed > before and "echo__echo" in await tool_names(client)

            await eventually(shown, "echo's tools to be back, with list_changed")
            assert text(await client.call_tool("echo__echo", {"message": "back"})) == "back"


# -- 10. a hundred forced restarts leave nothing behind

TINY_SERVER = r'''
"""A stdio MCP server in plain Python (starts in milliseconds): tool `pid`; starts a sleeping helper."""
import json, os, subprocess, sys

tag, helpers = sys.argv[1], sys.argv[2]
helper = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(600)", "helper-of-" + tag],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(helpers, "a") as f:
    f.write(f"{helper.pid}\n")
TOOL = {"name": "pid", "description": "this process id", "inputSchema": {"type": "object", "properties": {}}}


def answer(request_id, result=None, error=None):
    message = {"jsonrpc": "2.0", "id": request_id}
    message.update({"error": error} if error else {"result": result})
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    request = json.loads(line)
    method, request_id = request.get("method"), request.get("id")
    if request_id is None:
        continue
    if method == "initialize":
        answer(request_id, {"protocolVersion": request["params"]["protocolVersion"],
                            "capabilities": {"tools": {}}, "serverInfo": {"name": "tiny", "version": "1"}})
    elif method == "ping":
        answer(request_id, {})
    elif method == "tools/list":
        answer(request_id, {"tools": [TOOL]})
    elif method == "tools/call":
        answer(request_id, {"content": [{"type": "text", "text": str(os.getpid())}]})
    else:
        answer(request_id, error={"code": -32601, "message": "method not found"})
'''


async def test_hundred_forced_restarts_leave_no_process_behind(serve_gateway: Any, tmp_path: Path) -> None:
    marker, helpers = f"m-{uuid.uuid4().hex}", tmp_path / "helpers"
    script = tmp_path / "tiny_server.py"
    script.write_text(TINY_SERVER)
    churn = {"command": sys.executable, "args": ["-S", str(script), marker, str(helpers)]}
    gw = serve_gateway(config({"churn": churn, "other": echo("other")}),
                       env={"MANIFOLD_RESTART_BACKOFF_S": "0.01"})
    try:
        with anyio.fail_after(90):
            async with connect(gw) as (client, _), keeps_serving(client, "other__echo"):
                pid = await pid_of(client, "churn__pid")
                for _ in range(100):
                    os.kill(pid, signal.SIGKILL)
                    pid = await new_pid(client, pid, "churn__pid")
                row = await backend_status(gw, "churn")
                assert row["state"] == "healthy" and row["restarts"] >= 100

                current_helper = int(helpers.read_text().split()[-1])

                async def only_the_current_ones() -> bool:
                    return processes_with(marker) == {pid, current_helper}

                try:
                    await eventually(only_the_current_ones, "only the running server and its helper", 15)
                except AssertionError:
                    left = processes_with(marker) - {pid, current_helper}
                    raise AssertionError(f"{len(left)} processes of the backend left after 100 restarts: "
                                         f"{sorted(left)[:10]}") from None
                await eventually(now(lambda: not zombie_children(gw.proc.pid)), "every child reaped")
        stop_group(gw.proc)  # a clean shutdown takes the last one with it
        assert gw.proc.returncode == 0, "the gateway did not shut down cleanly on SIGTERM"

        try:
            await eventually(now(lambda: not processes_with(marker)), "no process left after shutdown", 15)
        except AssertionError:
            survivors = {pid: cmdline(pid).replace(b"\0", b" ").decode() for pid in processes_with(marker)}
            raise AssertionError(f"left after the gateway stopped (exit {gw.proc.returncode}): {survivors}\n"
                                 f"{gw.log.read_text()[-3000:]}") from None
    finally:
        for line in helpers.read_text().split() if helpers.exists() else []:
            kill_if_ours(int(line), marker)


# -- a hang that ends by itself

async def test_backend_that_stops_hanging_is_healthy_again(serve_gateway: Any) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    gw = serve_gateway(config({"echo": echo("echo", "--tag", marker), "other": echo("other")}), env=FAST)
    async with connect(gw) as (client, _), keeps_serving(client, "other__echo"):
        pid = await pid_of(client)
        os.kill(pid, signal.SIGSTOP)
        try:
            await eventually(in_state(gw, "echo", "degraded"), "echo to be degraded", 20)
        finally:
            os.kill(pid, signal.SIGCONT)  # before HUNG_AFTER checks have failed: no restart needed
        # no call to echo meanwhile: the monitor alone must notice it answers again
        back = await eventually(in_state(gw, "echo", "healthy"), "echo to be healthy again")
        assert back["restarts"] == 0 and back["reason"] == "ok"
        assert await pid_of(client) == pid


# -- an http backend that goes away and comes back

async def test_http_backend_that_goes_away_is_reconnected(serve_gateway: Any) -> None:
    port = free_port()
    server = start_http_echo(port, "web")
    try:
        web = {"url": f"http://127.0.0.1:{port}/mcp"}
        gw = serve_gateway(config({"web": web, "other": echo("other")}), env=FAST)
        with anyio.fail_after(40):  # the call timeout is 60 s
            async with connect(gw) as (client, _), keeps_serving(client, "other__echo"):
                await eventually(in_state(gw, "web", "healthy"), "web to connect")
                assert text(await client.call_tool("web__echo", {"message": "up"})) == "up"
                stop_group(server)
                result = await client.call_tool("web__echo", {"message": "gone?"})
                assert result.is_error and "'web'" in text(result), text(result)

                async def not_healthy() -> dict[str, Any] | None:
                    row = await backend_status(gw, "web")
                    return row if row["state"] != "healthy" else None

                await eventually(not_healthy, "web to be marked down")
                server = start_http_echo(port, "web")
                await eventually(in_state(gw, "web", "healthy", restarts=1), "web to be reconnected")
                assert text(await client.call_tool("web__echo", {"message": "again"})) == "again"
    finally:
        stop_group(server)
