"""Issue 6: detection and recovery after kill -9, fast failure, and what the monitor costs a call.

Detection and recovery are compared with what a bare client sees: a direct
stdio client's time to learn its child died (a call to it fails), and its time
to open a fresh stdio session to the same server. Times are read from
`/status`, polled every 5 ms, with `MANIFOLD_HEALTH_INTERVAL_S=0.5`.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from bench.common import (
    ECHO_SERVER,
    PYTHON,
    BenchError,
    Results,
    call_ok,
    cpu_meter,
    median,
    pct,
    start_gateway,
    stdio_echo,
    stop,
    timed,
    wait_state,
)

AREA = "health"
KILL_RUNS = 3
FAST_CALLS = 300
MONITOR_CALLS = 400
ROUNDS = 4
INTERVAL_S = "0.5"


def _direct_params() -> StdioServerParameters:
    return StdioServerParameters(command=PYTHON, args=[ECHO_SERVER, "--name", "direct"])


async def _direct_open_s() -> float:
    t0 = time.monotonic()
    async with Client(_direct_params(), mode="legacy", cache=None):
        return time.monotonic() - t0


async def _direct_detect_s() -> float:
    """A bare stdio client: kill -9 its child, then time until a call to it fails."""
    async with Client(_direct_params(), mode="legacy", cache=None) as c:
        pid = int((await call_ok(c, "pid", {})).content[0].text)
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        with anyio.fail_after(10):
            try:
                while True:
                    await c.call_tool("echo", {"message": "x"})
                    await anyio.sleep(0.005)
            except Exception:
                return time.monotonic() - t0
    raise BenchError("unreachable")


async def run(res: Results, tmp: Path) -> None:
    await _kills(res, tmp)
    await _monitor_cost(res, tmp)


async def _kills(res: Results, tmp: Path) -> None:
    block = tmp / "victim.block"
    gw = start_gateway(tmp, {"victim": stdio_echo("victim", block_file=block), "echo": stdio_echo("echo")},
                       env={"MANIFOLD_HEALTH_INTERVAL_S": INTERVAL_S})
    try:
        detect: list[float] = []
        recover: list[float] = []
        direct_detect: list[float] = []
        direct_open: list[float] = []
        async with Client(gw.url) as client:
            await timed(lambda: call_ok(client, "victim__echo"), 10)
            for _ in range(KILL_RUNS):
                pid = int((await call_ok(client, "victim__pid", {})).content[0].text)
                os.kill(pid, signal.SIGKILL)
                t0 = time.monotonic()
                t1 = wait_state(gw, "victim", {"unavailable"}, poll_s=0.005)
                t2 = wait_state(gw, "victim", {"healthy"}, poll_s=0.005)
                detect.append(t1 - t0)
                recover.append(t2 - t1)
                direct_detect.append(await _direct_detect_s())
                direct_open.append(await _direct_open_s())
                await call_ok(client, "victim__echo")
            res.add(AREA, "kill -9 of a stdio child to `unavailable`", median(detect) * 1e3,
                    median(direct_detect) * 1e3, "ms",
                    note=f"median of {KILL_RUNS}; direct = a bare stdio client's call failing after the kill")
            res.add(AREA, "`unavailable` to `healthy` (child can start)", median(recover) * 1e3,
                    median(direct_open) * 1e3, "ms",
                    note=f"median of {KILL_RUNS}; includes the first restart backoff (0.5 s +-20%); "
                         "direct = a bare client opening a new stdio session")
            res.note("kill runs: detect " + ", ".join(f"{t * 1e3:.0f}" for t in detect) + " ms; recover "
                     + ", ".join(f"{t * 1e3:.0f}" for t in recover) + " ms")

            # Now keep it down (the block file makes every restart fail) and call its tools.
            block.touch()
            pid = int((await call_ok(client, "victim__pid", {})).content[0].text)
            os.kill(pid, signal.SIGKILL)
            wait_state(gw, "victim", {"unavailable"})
            first = await client.call_tool("victim__echo", {"message": "x"})
            if not first.is_error:
                raise BenchError("a call to the down backend did not fail")
            res.note("fast failure says: " + " ".join(getattr(c, "text", "") for c in first.content)[:200])
            down: list[float] = []
            normal: list[float] = []

            async def fail() -> None:
                if not (await client.call_tool("victim__echo", {"message": "x"})).is_error:
                    raise BenchError("the down backend answered")

            for _ in range(ROUNDS):
                down += await timed(fail, FAST_CALLS // ROUNDS)
                normal += await timed(lambda: call_ok(client, "echo__echo"), FAST_CALLS // ROUNDS)
            res.add(AREA, "fast failure (down backend) vs a normal call, p50", median(down) * 1e3,
                    median(normal) * 1e3, "ms", note=f"{len(down)} calls each")
            res.add(AREA, "fast failure (down backend) vs a normal call, p99", pct(down, 99) * 1e3,
                    pct(normal, 99) * 1e3, "ms")
            block.unlink()
            t0 = time.monotonic()
            t1 = wait_state(gw, "victim", {"healthy"}, timeout_s=60, poll_s=0.005)
            res.note(f"after the block file went (restarts had been failing for a while), healthy in "
                     f"{(t1 - t0) * 1e3:.0f} ms: the rest of the current exponential backoff plus a start")
    finally:
        stop(gw)


async def _monitor_cost(res: Results, tmp: Path) -> None:
    """Two gateways side by side, one checking every 0.05 s and one every 60 s, calls interleaved."""
    fast = start_gateway(tmp, {"echo": stdio_echo("echo")}, env={"MANIFOLD_HEALTH_INTERVAL_S": "0.05"})
    slow = start_gateway(tmp, {"echo": stdio_echo("echo")}, env={"MANIFOLD_HEALTH_INTERVAL_S": "60"})
    try:
        async with Client(fast.url) as on, Client(slow.url) as off:
            samples: dict[str, list[float]] = {"on": [], "off": []}
            cpu: dict[str, float] = {}
            for c in (on, off):
                await timed(lambda c=c: call_ok(c, "echo__echo"), 30)
            for _ in range(ROUNDS):
                with cpu_meter({"on": fast.pid}, cpu):
                    samples["on"] += await timed(lambda: call_ok(on, "echo__echo"), MONITOR_CALLS // ROUNDS)
                with cpu_meter({"off": slow.pid}, cpu):
                    samples["off"] += await timed(lambda: call_ok(off, "echo__echo"), MONITOR_CALLS // ROUNDS)
            idle: dict[str, float] = {}
            with cpu_meter({"on": fast.pid, "off": slow.pid}, idle):
                await anyio.sleep(2.0)
        res.add(AREA, "call p50, monitor every 0.05 s vs every 60 s", median(samples["on"]) * 1e3,
                median(samples["off"]) * 1e3, "ms", note=f"{MONITOR_CALLS} calls each, interleaved")
        res.add(AREA, "call p99, monitor every 0.05 s vs every 60 s", pct(samples["on"], 99) * 1e3,
                pct(samples["off"], 99) * 1e3, "ms")
        n = len(samples["on"])
        res.note(f"monitor: gateway CPU per call {cpu['on'] / n * 1e3:.3f} ms (0.05 s) vs {cpu['off'] / n * 1e3:.3f}"
                 f" ms (60 s); idle CPU over 2 s {idle['on'] * 1e3:.0f} ms vs {idle['off'] * 1e3:.0f} ms")
    finally:
        stop(fast)
        stop(slow)
