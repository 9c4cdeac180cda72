"""Where the gateway's CPU goes on one echo call: py-spy on a real `manifold serve` under load.

    .venv/bin/pip install py-spy
    .venv/bin/python -m bench.profile [stdio|http] [--seconds 15] [--out .cache/profile-stdio.txt]

Not part of `make bench`. Samples the gateway process while one client calls
echo back to back, writes py-spy's collapsed stacks, and prints the share of
busy samples by layer and the functions with the most samples.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client

from bench.common import BIN, ROOT, call_ok, spawn, start_echo_http, start_gateway, stdio_echo, stop, stop_all

_IDLE = re.compile(r"(^|\.)(select|poll|epoll|wait|_wait_for_tstate_lock|acquire) \(")
LAYERS: list[tuple[str, re.Pattern[str]]] = [
    ("gateway input-schema check (jsonschema under Router)", re.compile(r"Router\..*jsonschema")),
    ("backend hop over HTTP (httpx2/httpcore2, SDK streamable_http client)",
     re.compile(r"httpx2|httpcore2|mcp/client/streamable_http\.py")),
    ("backend hop (gateway Router/McpBackend, SDK ClientSession, JSON-RPC)",
     re.compile(r"Router\.call|McpBackend|send_raw_request")),
    ("stdio pipe tasks (SDK stdio_client reader/writer)", re.compile(r"stdin_writer|stdout_reader")),
    ("SDK streamable-HTTP server (parse, validate, serialize, respond)",
     re.compile(r"_streamable_http_modern|streamable_http_manager|mcp/server/runner\.py")),
    ("uvicorn h11 + starlette", re.compile(r"h11|uvicorn|starlette")),
]


def _key(frame: str) -> str:
    m = re.match(r"(.*?) \((.*?):\d+\)", frame)
    if not m:
        return frame
    path = m.group(2).split("site-packages/")[-1].split(f"{ROOT}/")[-1]
    return f"{m.group(1)} ({path})"


def report(collapsed: Path, top: int = 25) -> str:
    layers: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = idle = connect = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        if _IDLE.search(frames[-1]):
            idle += n
            continue
        connect += n if "connect_tcp" in stack else 0
        layers[next((name for name, rx in LAYERS if rx.search(stack)), "event loop and other")] += n
        for k in {_key(f) for f in frames}:
            inclusive[k] += n
        own[_key(frames[-1])] += n
    busy = max(1, total - idle)
    out = [f"{total} samples, {busy} busy", "", "share of busy samples by layer:"]
    out += [f"  {100 * v / busy:5.1f}%  {k}" for k, v in layers.most_common()]
    out.append(f"  ({100 * connect / busy:.1f}% of busy samples are inside a TCP connect)")
    out += ["", "most samples, inclusive:"]
    out += [f"  {100 * v / busy:5.1f}%  {k}" for k, v in inclusive.most_common(top + 10)[10:]]
    out += ["", "most samples, own:"]
    out += [f"  {100 * v / busy:5.1f}%  {k}" for k, v in own.most_common(top)]
    return "\n".join(out)


async def _drive(transport: str, seconds: float, out: Path) -> None:
    spy_bin = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if spy_bin is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    tmp = Path(tempfile.mkdtemp(prefix="manifold-profile-"))
    echo = start_echo_http(tmp, name="profiled")
    gw = start_gateway(tmp, {"echo": stdio_echo("echo"), "echoh": {"url": echo.url}})
    tool = "echo__echo" if transport == "stdio" else "echoh__echo"
    try:
        async with Client(gw.url) as client:
            for _ in range(50):
                await call_ok(client, tool)
            spy = spawn([spy_bin, "record", "--pid", str(gw.pid), "-d", str(int(seconds)), "-r", "250",
                         "--format", "raw", "--nonblocking", "-o", str(out)], log=tmp / "py-spy.log")
            calls, t0 = 0, time.monotonic()
            while spy.poll() is None and time.monotonic() - t0 < seconds + 30:
                await call_ok(client, tool)
                calls += 1
            print(f"{calls} calls to {tool} in {time.monotonic() - t0:.1f} s while sampling")
    finally:
        stop(gw)
        stop(echo)
        stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("transport", nargs="?", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or ROOT / ".cache" / f"profile-{args.transport}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    anyio.run(_drive, args.transport, args.seconds, out)
    print(report(out))
    print(f"\ncollapsed stacks in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
