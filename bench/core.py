"""Issue 3: call latency, throughput, gateway CPU per call, warm listing, start-to-ready.

The client is `mcp.Client(url)` in auto mode (so it speaks 2026-07-28 to the
gateway and to the echo server alike); the gateway is a real `manifold serve`.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path

import anyio
from mcp import Client

from bench.common import (
    BARE_START,
    ECHO_ARGS,
    ECHO_SERVER,
    PYTHON,
    BenchError,
    Results,
    call_ok,
    cpu_meter,
    median,
    pct,
    spawn,
    start_echo_http,
    start_gateway,
    stdio_echo,
    stop,
    timed,
)

LATENCY_CALLS = 400
"""Calls per latency figure (p50/p99), in `ROUNDS` interleaved rounds so drift hits every target alike."""
ROUNDS = 4
WARMUP = 30
SESSIONS = (1, 8, 32)
THROUGHPUT_CALLS = 480
"""Calls per throughput run (split over the sessions), two runs per target and session count."""
THROUGHPUT_REPS = 2
LISTINGS = 15
"""Timed warm listings (after one untimed) per side."""
START_RUNS = 3
BACKENDS_20 = 20
TOOLS_EACH = 41  # + the echo server's 9 base tools = 50 a backend, 1,000 in all
DIRECT_EXTRA = 991  # 9 + 991 = 1,000 tools from one server

AREA = "core"


async def run(res: Results, tmp: Path) -> None:
    await _calls(res, tmp)
    await _start_and_list(res, tmp)


async def _calls(res: Results, tmp: Path) -> None:
    echo = start_echo_http(tmp, name="direct")
    gw = start_gateway(tmp, {"echo": stdio_echo("echo"), "echoh": {"url": echo.url}})
    try:
        async with Client(echo.url) as direct, Client(gw.url) as via:
            child = int((await call_ok(via, "echo__pid", {})).content[0].text)
            targets: dict[str, tuple[Client, str, dict[str, int]]] = {
                "direct": (direct, "echo", {"backend": echo.pid}),
                "stdio": (via, "echo__echo", {"gateway": gw.pid, "backend": child}),
                "http": (via, "echoh__echo", {"gateway": gw.pid, "backend": echo.pid}),
            }
            samples: dict[str, list[float]] = {k: [] for k in targets}
            cpu: dict[str, dict[str, float]] = {k: {} for k in targets}
            for client, tool, _ in targets.values():
                await timed(lambda c=client, t=tool: call_ok(c, t), WARMUP)
            for _ in range(ROUNDS):
                for key, (client, tool, pids) in targets.items():
                    with cpu_meter(pids, cpu[key]):
                        samples[key] += await timed(lambda c=client, t=tool: call_ok(c, t),
                                                    LATENCY_CALLS // ROUNDS)
            d = samples["direct"]
            for key, label in (("stdio", "stdio"), ("http", "HTTP")):
                s = samples[key]
                res.add(AREA, f"p50 tools/call, echo over {label}", median(s) * 1e3, median(d) * 1e3, "ms",
                        target=("<=", 1.5), note=f"{len(s)} calls each")
                res.add(AREA, f"p99 tools/call, echo over {label}", pct(s, 99) * 1e3, pct(d, 99) * 1e3, "ms")
            n = len(d)
            direct_backend_ms = cpu["direct"]["backend"] / n * 1e3
            for key, label in (("stdio", "stdio"), ("http", "HTTP")):
                res.add(AREA, f"gateway CPU per call, echo over {label}", cpu[key]["gateway"] / n * 1e3,
                        direct_backend_ms, "ms", compare="abs", target=("<", 1.0),
                        note="direct = the echo backend's own CPU per direct call")
            res.note(f"CPU per call over stdio: gateway {cpu['stdio']['gateway'] / n * 1e3:.3f} ms, its stdio child "
                     f"{cpu['stdio']['backend'] / n * 1e3:.3f} ms; echo over HTTP directly "
                     f"{direct_backend_ms:.3f} ms (from /proc/<pid>/stat, {n} calls, 10 ms ticks)")

        for sessions in SESSIONS:
            rates: dict[str, list[float]] = {"direct": [], "stdio": [], "http": []}
            gw_cpu: dict[str, float] = {}
            calls = 0
            for _ in range(THROUGHPUT_REPS):
                rates["direct"].append(await _throughput(echo.url, "echo", sessions))
                with cpu_meter({"gateway": gw.pid}, gw_cpu):
                    rates["stdio"].append(await _throughput(gw.url, "echo__echo", sessions))
                calls += (THROUGHPUT_CALLS // sessions) * sessions
                rates["http"].append(await _throughput(gw.url, "echoh__echo", sessions))
            for key, label in (("stdio", "stdio"), ("http", "HTTP")):
                res.add(AREA, f"throughput, {sessions} sessions, echo over {label}",
                        sum(rates[key]) / len(rates[key]), sum(rates["direct"]) / len(rates["direct"]), "call/s",
                        target=(">=", 0.6) if sessions == 32 else None,
                        note=f"{THROUGHPUT_REPS} runs of {THROUGHPUT_CALLS} calls")
            if sessions == 32:
                per_call = gw_cpu["gateway"] / calls * 1e3
                res.note(f"gateway CPU per call at 32 sessions (stdio backend): {per_call:.3f} ms")
    finally:
        stop(gw)
        stop(echo.proc)


async def _throughput(url: str, tool: str, sessions: int) -> float:
    """Calls per second with `sessions` client sessions each making calls back to back."""
    per = THROUGHPUT_CALLS // sessions
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(url)) for _ in range(sessions)]
        async with anyio.create_task_group() as tg:
            for c in clients:
                tg.start_soon(timed, lambda c=c: call_ok(c, tool), 3)
        go = anyio.Event()

        async def worker(c: Client) -> None:
            await go.wait()
            for _ in range(per):
                await call_ok(c, tool, ECHO_ARGS)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for c in clients:
                    tg.start_soon(worker, c)
                await anyio.sleep(0.05)
                t0 = time.perf_counter()
                go.set()
        return per * sessions / (time.perf_counter() - t0)


async def _list_all(client: Client) -> int:
    n, cursor = 0, None
    while True:
        page = await client.list_tools(cursor=cursor, cache_mode="bypass")
        n += len(page.tools)
        if (cursor := page.next_cursor) is None:
            return n


def _bare_start(tmp: Path) -> float:
    """Seconds from spawning the bare client to its `ready` line (20 stdio sessions open)."""
    t0 = time.monotonic()
    proc = spawn([PYTHON, BARE_START, str(BACKENDS_20), ECHO_SERVER], stdout=subprocess.PIPE,
                 log=tmp / "bare-start.log")
    watchdog = threading.Timer(90, stop, (proc,))
    watchdog.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = time.monotonic() - t0
        if line.strip() != b"ready":
            raise BenchError(f"bare client did not get ready: {(tmp / 'bare-start.log').read_text()[-2000:]}")
        proc.wait(timeout=30)
        return elapsed
    finally:
        watchdog.cancel()
        stop(proc)


async def _start_and_list(res: Results, tmp: Path) -> None:
    backends = {f"e{i:02d}": stdio_echo(f"e{i:02d}", extra_tools=TOOLS_EACH) for i in range(BACKENDS_20)}
    bare: list[float] = []
    started: list[float] = []
    for run_no in range(START_RUNS):
        bare.append(_bare_start(tmp))
        gw = start_gateway(tmp, backends)
        try:
            started.append(gw.ready_at - gw.started_at)
            if run_no == 0:
                await _listing(res, tmp, gw.url, gw.pid)
        finally:
            stop(gw)
    res.add(AREA, f"start-to-ready, {BACKENDS_20} stdio backends", median(started), median(bare), "s",
            target=("<=", 1.1), note=f"median of {START_RUNS}; direct = bare client opening the same sessions")
    res.note(f"start-to-ready runs: gateway {', '.join(f'{t:.2f}' for t in started)} s; "
             f"bare client {', '.join(f'{t:.2f}' for t in bare)} s")


async def _listing(res: Results, tmp: Path, gw_url: str, gw_pid: int) -> None:
    one = start_echo_http(tmp, extra_tools=DIRECT_EXTRA, name="thousand")
    try:
        async with Client(one.url) as direct, Client(gw_url) as via:
            counts = {"direct": await _list_all(direct), "gateway": await _list_all(via)}  # the untimed first
            times: dict[str, list[float]] = {"direct": [], "gateway": []}
            cpu: dict[str, float] = {}
            for _ in range(LISTINGS):
                times["direct"] += await timed(lambda: _list_all(direct), 1)
                with cpu_meter({"gateway": gw_pid}, cpu):
                    times["gateway"] += await timed(lambda: _list_all(via), 1)
        res.add(AREA, f"warm tools/list, {counts['gateway']} tools from {BACKENDS_20} backends",
                median(times["gateway"]) * 1e3, median(times["direct"]) * 1e3, "ms", target=("<=", 1.2),
                note=f"median of {LISTINGS}; direct = one server listing {counts['direct']} tools")
        res.note(f"warm listing: gateway CPU {cpu['gateway'] / LISTINGS * 1e3:.1f} ms per full listing; "
                 f"{counts['gateway']} tools through the gateway (all pages), {counts['direct']} direct")
    finally:
        stop(one.proc)
