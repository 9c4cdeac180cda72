"""Issue 5: `gateway__coordinate` against the same calls made by the client, in one run.

A 5-step sequential chain (each step echoing the previous step's text) against
the client making the 5 calls itself through the gateway; 10 parallel steps of
`slow seconds=0.1` against one; a fallback whose first alternative's backend is
down (an http backend whose server was killed: its tools stay listed, its
health is `unavailable`) against calling the second alternative directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp import Client

from bench.common import (
    ECHO_ARGS,
    BenchError,
    Results,
    call_ok,
    median,
    start_echo_http,
    start_gateway,
    stdio_echo,
    stop,
    timed,
    wait_state,
)

AREA = "patterns"
COORDINATE = "gateway__coordinate"
CHAIN_RUNS = 60
"""5-step plans (and 5-call chains) timed, in 3 interleaved rounds."""
PARALLEL_RUNS = 10
FALLBACK_RUNS = 200
SLOW = {"seconds": 0.1}


def _chain_plan() -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"id": "s1", "tool": "echo__echo", "arguments": ECHO_ARGS}]
    for i in range(2, 6):
        steps.append({"id": f"s{i}", "tool": "echo__echo", "arguments": {"message": f"{{{{ s{i - 1}.text }}}}"}})
    return {"pattern": "sequential", "steps": steps}


def _parallel_plan(n: int) -> dict[str, Any]:
    return {"pattern": "parallel", "max_concurrency": max(n, 1),
            "steps": [{"id": f"p{i}", "tool": "echo__slow", "arguments": SLOW} for i in range(n)]}


FALLBACK_PLAN = {"pattern": "fallback", "steps": [
    {"id": "primary", "tool": "down__echo", "arguments": ECHO_ARGS},
    {"id": "second", "tool": "echo__echo", "arguments": ECHO_ARGS},
]}


async def _plan(client: Client, plan: dict[str, Any], want: str) -> Any:
    result = await client.call_tool(COORDINATE, plan)
    status = (result.structured_content or {}).get("status")
    if status != want:
        raise BenchError(f"{plan['pattern']} plan: status {status!r}, wanted {want!r}: {result.content}")
    return result


async def run(res: Results, tmp: Path) -> None:
    down = start_echo_http(tmp, name="down")
    gw = start_gateway(tmp, {"echo": stdio_echo("echo"), "down": {"url": down.url}},
                       env={"MANIFOLD_HEALTH_INTERVAL_S": "1"})
    try:
        async with Client(gw.url) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            if COORDINATE not in names:
                res.note(f"patterns skipped: the gateway has no {COORDINATE} tool")
                return
            await _chain(res, client)
            await _parallel(res, client)
            stop(down.proc)  # its port is closed now; the gateway notices and marks it unavailable
            wait_state(gw, "down", {"unavailable"}, timeout_s=30)
            await _fallback(res, client)
    finally:
        stop(gw)
        stop(down.proc)


async def _chain(res: Results, client: Client) -> None:
    plan = _chain_plan()

    async def by_hand() -> None:
        message = ECHO_ARGS["message"]
        for _ in range(5):
            message = (await call_ok(client, "echo__echo", {"message": message})).content[0].text

    await timed(lambda: _plan(client, plan, "ok"), 10)
    await timed(by_hand, 10)
    coord: list[float] = []
    hand: list[float] = []
    for _ in range(3):
        coord += await timed(lambda: _plan(client, plan, "ok"), CHAIN_RUNS // 3)
        hand += await timed(by_hand, CHAIN_RUNS // 3)
    res.add(AREA, "5-step sequential plan vs 5 client calls", median(coord) * 1e3, median(hand) * 1e3, "ms",
            note=f"median of {len(coord)}; direct = the client calling echo 5 times through the gateway")


async def _parallel(res: Results, client: Client) -> None:
    ten, one_plan, one_call = _parallel_plan(10), _parallel_plan(1), []
    t10: list[float] = []
    t1: list[float] = []
    await _plan(client, ten, "ok")
    for _ in range(PARALLEL_RUNS):
        t10 += await timed(lambda: _plan(client, ten, "ok"), 1)
        t1 += await timed(lambda: _plan(client, one_plan, "ok"), 1)
        one_call += await timed(lambda: call_ok(client, "echo__slow", SLOW), 1)
    res.add(AREA, "10 parallel 100 ms steps vs a 1-step plan", median(t10) * 1e3, median(t1) * 1e3, "ms",
            target=("<=", 1.3), note=f"median of {PARALLEL_RUNS}")
    res.add(AREA, "10 parallel 100 ms steps vs one plain call", median(t10) * 1e3, median(one_call) * 1e3, "ms",
            target=("<=", 1.3), note=f"median of {PARALLEL_RUNS}; direct = calling echo__slow through the gateway")


async def _fallback(res: Results, client: Client) -> None:
    first = await _plan(client, FALLBACK_PLAN, "degraded")
    steps = {s["id"]: s["status"] for s in (first.structured_content or {}).get("steps", [])}
    if steps.get("primary") != "skipped":
        raise BenchError(f"fallback: the down alternative was not skipped at once: {steps}")
    await timed(lambda: call_ok(client, "echo__echo"), 20)
    plan: list[float] = []
    direct: list[float] = []
    for _ in range(4):
        plan += await timed(lambda: _plan(client, FALLBACK_PLAN, "degraded"), FALLBACK_RUNS // 4)
        direct += await timed(lambda: call_ok(client, "echo__echo"), FALLBACK_RUNS // 4)
    res.add(AREA, "fallback, first backend down, vs calling the second", median(plan) * 1e3,
            median(direct) * 1e3, "ms", compare="added", target=("<", 5.0),
            note=f"median of {len(plan)}; the down alternative is skipped (backend unavailable)")
