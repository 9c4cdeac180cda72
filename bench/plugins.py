"""Issue 7: first-party plugins through the gateway against the same backend called in-process.

Runs only for the plugins `manifold plugins --json` lists. In-process means the
backend class instantiated from its config and `call_tool` awaited directly (no
MCP hop, no router); so the ratio is the whole cost of going through the gateway.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from mcp import Client

from bench.common import BIN, BenchError, Results, interleaved, start_gateway, stop

AREA = "plugins"
ROWS = 1000
MIB = 1024 * 1024


def installed() -> set[str]:
    out = subprocess.run([str(BIN / "manifold"), "plugins", "--json"], capture_output=True, timeout=60, check=True)
    return {p["name"] for p in json.loads(out.stdout) if not p.get("error")}


async def run(res: Results, tmp: Path) -> None:
    names = installed()
    if "database" in names:
        await _database(res, tmp)
    else:
        res.note("plugins: database plugin not installed; its figure skipped")
    if "workspace" in names:
        await _workspace(res, tmp)
    else:
        res.note("plugins: workspace plugin not installed; its figure skipped")


def _backend(type_name: str, table: dict[str, Any]) -> Any:
    from gateway import plugins

    cls = plugins.load().backend_types[type_name]
    return cls(type_name, cls.Config.model_validate({"type": type_name, **table}))


async def _database(res: Results, tmp: Path) -> None:
    from gateway.backends import CallContext

    db = tmp / "bench.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, note TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?)",
                         [(i, f"item {i}", i * 1.25, "a short note about this item") for i in range(ROWS)])
    table = {"path": str(db), "max_rows": ROWS, "read_only": True}
    args = {"sql": "SELECT * FROM items ORDER BY id"}
    gw = start_gateway(tmp, {"db": {"type": "database", **table}})
    backend = _backend("database", table)
    try:
        async with backend.open(), Client(gw.url) as client:
            async def via() -> None:
                r = await client.call_tool("db__query", args)
                if r.is_error or len((r.structured_content or {}).get("rows", [])) != ROWS:
                    raise BenchError(f"db__query through the gateway: {str(r.content)[:300]}")

            async def local() -> None:
                r = await backend.call_tool("query", args, CallContext())
                if r.is_error or len((r.structured_content or {}).get("rows", [])) != ROWS:
                    raise BenchError(f"query in-process: {str(r.content)[:300]}")

            await interleaved(res, AREA, f"database query of {ROWS} rows", via, local, "direct = backend in-process")
    finally:
        stop(gw)


async def _workspace(res: Results, tmp: Path) -> None:
    from gateway.backends import CallContext

    root = tmp / "workspace"
    root.mkdir(exist_ok=True)
    probe = _backend("workspace", {"root": str(root)})
    cap = next((f.default for n, f in type(probe.config).model_fields.items()
                if "max" in n and "bytes" in n and "read" in n and isinstance(f.default, int)), None)
    cap = cap or next((f.default for n, f in type(probe.config).model_fields.items()
                       if "max" in n and "bytes" in n and isinstance(f.default, int)), None)
    size = MIB if cap is None or cap >= MIB else cap
    if size < MIB:
        res.note(f"workspace: the plugin caps reads at {size} bytes, so the read is {size} bytes, not 1 MiB")
    line = "the quick brown fox jumps over the lazy dog 0123456789\n"
    (root / "big.txt").write_text((line * (size // len(line) + 1))[:size])
    backend = _backend("workspace", {"root": str(root)})
    async with backend.open():
        tools = {t.name: t for t in await backend.list_tools()}
    read = tools.get("read")
    if read is None:
        res.note(f"workspace: no `read` tool (has {', '.join(sorted(tools))}); figure skipped")
        return
    props = read.input_schema.get("properties", {})
    key = "path" if "path" in props else (read.input_schema.get("required") or list(props))[0]
    args = {key: "big.txt"}
    gw = start_gateway(tmp, {"ws": {"type": "workspace", "root": str(root)}})
    try:
        async with backend.open(), Client(gw.url) as client:
            async def via() -> None:
                r = await client.call_tool("ws__read", args)
                if r.is_error or sum(len(getattr(c, "text", "")) for c in r.content) < size:
                    raise BenchError(f"ws__read through the gateway: {str(r.content)[:300]}")

            async def local() -> None:
                r = await backend.call_tool("read", args, CallContext())
                if r.is_error or sum(len(getattr(c, "text", "")) for c in r.content) < size:
                    raise BenchError(f"read in-process: {str(r.content)[:300]}")

            await interleaved(res, AREA, f"workspace read of a {size / MIB:.2f} MiB text file", via, local,
                              "direct = backend in-process")
    finally:
        stop(gw)
