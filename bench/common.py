"""What every benchmark area shares: processes, configs, clocks and the results table."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client

ROOT = Path(__file__).resolve().parent.parent
ECHO_SERVER = str(ROOT / "tests" / "servers" / "echo_server.py")
BLOCKABLE = str(Path(__file__).resolve().parent / "blockable.py")
BARE_START = str(Path(__file__).resolve().parent / "bare_start.py")
PYTHON = sys.executable
BIN = Path(PYTHON).parent
HOST = "127.0.0.1"
ECHO_ARGS = {"message": "hello"}
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A benchmark could not be set up (a process died, a port never opened)."""


# --- processes -------------------------------------------------------------------------------

_started: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def spawn(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
          log: Path | None = None, stdout: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start a process in a process group of its own; `stop` ends the group."""
    err = log.open("wb") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err,
                                start_new_session=True)
    finally:
        if log is not None:
            err.close()  # type: ignore[union-attr]
    _started.append(proc)
    return proc


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, read from /proc (children first found, then theirs)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out.extend(kids)
        todo.extend(kids)
    return out


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop(target: Any, timeout_s: float = 10.0) -> None:
    """Stop a process started by `spawn` (or a Gateway/EchoHttp holding one) through its group,
    then any descendant that put itself in a group of its own (stdio backends)."""
    proc: subprocess.Popen[bytes] = getattr(target, "proc", target)
    left = descendants(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout_s)
    _signal_group(proc.pid, signal.SIGKILL)  # the leader is gone; its group may not be
    for pid in left:  # children the process put in groups of their own (stdio backends)
        with contextlib.suppress(OSError):
            pgid = os.getpgid(pid)
            if pgid == pid:
                _signal_group(pgid, signal.SIGKILL)
    if proc in _started:
        _started.remove(proc)


def stop_all() -> None:
    for proc in list(reversed(_started)):
        stop(proc)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.02) -> float:
    """Poll until true; return the monotonic time it became true. Raises after the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(poll_s)
    raise BenchError(f"timed out after {timeout_s:g}s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


@dataclass
class EchoHttp:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/mcp"

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_echo_http(tmp: Path, *, extra_tools: int = 0, name: str = "echo") -> EchoHttp:
    port = free_port()
    proc = spawn([PYTHON, ECHO_SERVER, "--http", str(port), "--extra-tools", str(extra_tools), "--name", name],
                 log=tmp / f"echo-{name}-{port}.log")

    def up() -> bool:
        if proc.poll() is not None:
            raise BenchError(f"echo server {name} exited {proc.returncode}")
        return port_open(port)

    wait_until(up, 30, f"echo server {name} on port {port}")
    return EchoHttp(proc, port)


def stdio_echo(name: str, *, extra_tools: int = 0, block_file: Path | None = None) -> dict[str, Any]:
    """A `[backends.x]` table running our echo server over stdio (optionally startable only on demand)."""
    args = [ECHO_SERVER, "--name", name, "--extra-tools", str(extra_tools)]
    if block_file is not None:
        args = [BLOCKABLE, str(block_file), *args]
    return {"command": PYTHON, "args": args}


# --- the gateway -----------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_config(backends: dict[str, dict[str, Any]], gateway: dict[str, Any] | None = None) -> str:
    lines: list[str] = []
    if gateway:
        lines.append("[gateway]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in gateway.items()]
        lines.append("")
    for name, table in backends.items():
        lines.append(f"[backends.{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    started_at: float
    ready_at: float = math.nan

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self) -> dict[str, Any]:
        return httpx2.get(f"{self.base}/status", timeout=5).json()  # type: ignore[no-any-return]

    def backend(self, name: str) -> dict[str, Any]:
        return next(b for b in self.status()["backends"] if b["name"] == name)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise BenchError(f"gateway exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx2.get(f"{self.base}/readyz", timeout=2).status_code == 200
        except httpx2.HTTPError:
            return False


def start_gateway(tmp: Path, backends: dict[str, dict[str, Any]], *, env: dict[str, str] | None = None,
                  wait: bool = True, timeout_s: float = 90.0) -> Gateway:
    """`manifold serve` on a free port with a generated TOML config; waits for /readyz 200."""
    port = free_port()
    config = tmp / f"manifold-{port}.toml"
    config.write_text(toml_config(backends))
    env_file = tmp / "empty.env"
    env_file.touch()
    full_env = {**os.environ, "MANIFOLD_PORT": str(port), "MANIFOLD_HOST": HOST, "MANIFOLD_CONFIG": str(config),
                **(env or {})}
    log = tmp / f"gateway-{port}.log"
    t0 = time.monotonic()
    proc = spawn([str(BIN / "manifold"), "serve", "--env-file", str(env_file)], env=full_env, cwd=tmp, log=log)
    gw = Gateway(proc, port, log, t0)
    if wait:
        gw.ready_at = wait_until(gw.ready, timeout_s, "the gateway to be ready")
    return gw


def wait_state(gw: Gateway, backend: str, states: set[str], timeout_s: float = 30.0, poll_s: float = 0.01) -> float:
    return wait_until(lambda: gw.backend(backend)["state"] in states, timeout_s,
                      f"backend {backend} to be {'/'.join(sorted(states))}", poll_s)


# --- clocks ----------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads, not its children), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


@contextlib.contextmanager
def cpu_meter(pids: dict[str, int], into: dict[str, float]) -> Iterator[None]:
    """Add the CPU seconds each process spends inside the block to `into[name]`."""
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    yield
    for k, p in pids.items():
        into[k] = into.get(k, 0.0) + cpu_seconds(p) - before[k]


def pct(values: list[float], p: float) -> float:
    """Percentile by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return pct(values, 50)


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


async def interleaved(res: Results, area: str, figure: str, via: Callable[[], Awaitable[Any]],
                      direct: Callable[[], Awaitable[Any]], note: str, runs: int = 30) -> None:
    """Median time of `via` against `direct`: 3 warm-up calls each, then `runs` each in 3 interleaved rounds."""
    await timed(via, 3)
    await timed(direct, 3)
    via_times: list[float] = []
    direct_times: list[float] = []
    for _ in range(3):
        via_times += await timed(via, runs // 3)
        direct_times += await timed(direct, runs // 3)
    res.add(area, figure, median(via_times) * 1e3, median(direct_times) * 1e3, "ms",
            note=f"median of {len(via_times)}; {note}")


async def call_ok(client: Client, tool: str, args: dict[str, Any] | None = None) -> Any:
    result = await client.call_tool(tool, args if args is not None else ECHO_ARGS)
    if result.is_error:
        raise BenchError(f"{tool} failed: {result.content}")
    return result


# --- results ---------------------------------------------------------------------------------

@dataclass
class Row:
    area: str
    figure: str
    gateway: float
    direct: float
    unit: str
    compare: str = "ratio"
    """How the figure is judged: `ratio` (gateway/direct), `added` (gateway-direct), `abs` (gateway alone)."""
    target: str = ""
    met: bool | None = None
    note: str = ""
    ratio: float = field(init=False)
    added: float = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = self.gateway / self.direct if self.direct else math.nan
        self.added = self.gateway - self.direct


class Results:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.errors: list[str] = []

    def add(self, area: str, figure: str, gateway: float, direct: float, unit: str, *, compare: str = "ratio",
            target: tuple[str, float] | None = None, note: str = "") -> Row:
        """`target`: (`"<="` | `">="` | `"<"`, bound) applied to the figure `compare` names."""
        row = Row(area, figure, gateway, direct, unit, compare, note=note)
        if target is not None:
            op, bound = target
            value = {"ratio": row.ratio, "added": row.added, "abs": row.gateway}[compare]
            row.met = {"<=": value <= bound, ">=": value >= bound, "<": value < bound}[op]
            what = {"ratio": f"{bound:g}x direct", "added": f"{bound:g} {unit} added", "abs": f"{bound:g} {unit}"}
            row.target = f"{op} {what[compare]}"
        self.rows.append(row)
        print(f"  {area:8} {figure:52} {_fmt(row.gateway):>9} vs {_fmt(row.direct):>9} {unit:6} "
              f"-> {row.ratio:5.2f}x" + (f"  [{'MET' if row.met else 'MISSED'} {row.target}]"
                                        if row.met is not None else ""), flush=True)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def error(self, area: str, text: str) -> None:
        self.errors.append(f"{area}: {text}")
        print(f"  ERROR {area}: {text}", flush=True)

    def table(self) -> str:
        head = ("area", "figure", "gateway", "direct", "unit", "ratio", "added")
        rows = [head] + [(r.area, r.figure, _fmt(r.gateway), _fmt(r.direct), r.unit, f"{r.ratio:.2f}x",
                          f"{r.added:+.2f}") for r in self.rows]
        return _grid(rows)

    def summary(self) -> str:
        head = ("target", "figure", "measured", "verdict")
        rows: list[tuple[str, ...]] = [head]
        for r in self.rows:
            if r.met is None:
                continue
            measured = {"ratio": f"{r.ratio:.2f}x", "added": f"{r.added:+.2f} {r.unit}",
                        "abs": f"{r.gateway:.3f} {r.unit}"}[r.compare]
            rows.append((r.target, f"{r.area}: {r.figure}", measured, "MET" if r.met else "MISSED"))
        return _grid(rows)

    def dump(self, path: Path, meta: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**meta, "rows": [asdict(r) for r in self.rows], "notes": self.notes,
                                    "errors": self.errors}, indent=2, default=str))


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"


def _grid(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 2 or n == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
