"""The config `make run` serves: it passes `manifold check`, and served (paths made
absolute, the demo notes API on a free port) every route in it works."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest
from conftest import BIN, ROOT, wait_until
from mcp import Client

from gateway.testing import ServedGateway, free_port, listening, served

DEFAULT = ROOT / "config" / "manifold.toml"


def test_the_default_config_passes_check() -> None:
    proc = subprocess.run([str(BIN / "manifold"), "check", "--config", str(DEFAULT), "--env-file", os.devnull],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "8 backend(s), 5 route(s)" in proc.stdout


@pytest.fixture
def notes_api(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    demo = [sys.executable, "-m", "manifold_openapi.demo", "--host", "127.0.0.1", "--port", str(port)]
    with listening(demo, port, log=tmp_path / "notes-api.log"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def gw(tmp_path: Path, notes_api: str) -> Iterator[ServedGateway]:
    text = DEFAULT.read_text()
    text = text.replace('spec = "plugins/', f'base_url = "{notes_api}"\nspec = "{ROOT}/plugins/')
    text = text.replace('args = ["--repository", "."]', f'args = ["--repository", "{ROOT}"]')
    text = re.sub(r"repo_path = \"\.\"", f'repo_path = "{ROOT}"', text)
    text = re.sub(r"(?m)^port = \d+$", "", text)  # served() picks a free port
    text = text.replace('".cache/npm/', f'"{ROOT}/.cache/npm/')
    if not (ROOT / ".cache/npm/node_modules/@modelcontextprotocol/server-filesystem").exists():
        pytest.skip("server-filesystem missing: run `make test` (it installs the npm servers)")
    (tmp_path / "workspace").mkdir()  # as `make run` does: server-filesystem needs its folder at start
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "MANIFOLD_RESTART_BACKOFF_S": "20"}
    with served(text, tmp_path, env=env) as gateway:
        yield gateway


def texts(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_every_backend_and_route_of_the_default_config_serves(gw: ServedGateway, tmp_path: Path) -> None:
    assert {b["name"]: b["state"] for b in gw.status()["backends"]} == dict.fromkeys(
        ["time", "clock", "git", "example", "db", "files", "fs", "notes"], "healthy")
    async with Client(gw.url) as client:
        async def route(name: str, arguments: dict[str, object], want: str = "ok") -> dict[str, object]:
            result = await client.call_tool(name, arguments)
            out = dict(result.structured_content or {})
            assert out.get("status") == want, texts(result)
            return out

        now = await route("now", {"timezone": "Asia/Tokyo"})
        assert now["pattern"] == "fallback"
        snapshot = await route("repo_snapshot", {})
        assert [s["status"] for s in snapshot["steps"]] == ["ok", "ok", "ok"]  # type: ignore[index]
        greet = await route("greet_now", {"name": "Ada"})
        assert "Hello, Ada, it is 20" in greet["steps"][1]["content"][0]["text"]  # type: ignore[index]
        clocks = await route("all_clocks", {})
        assert {s["backend"] for s in clocks["steps"]} == {"time", "clock"}  # type: ignore[union-attr]

        saved = await route("save_note", {"title": "hello", "text": "first"})
        assert (tmp_path / "workspace" / "notes" / "hello.txt").read_text() == "first"
        note_id = saved["steps"][0]["structured"]["id"]  # type: ignore[index]
        undone = await route("save_note", {"title": "../out", "text": "x"}, want="failed")
        assert [s["status"] for s in undone["steps"]] == ["compensated", "error"]  # type: ignore[index]
        listed = await client.call_tool("notes__listNotes", {})
        assert [n["id"] for n in (listed.structured_content or {})["notes"]] == [note_id]


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def children(pid: int) -> list[int]:
    """Every descendant of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        todo += kids
    return found


async def test_the_workspace_serves_the_filesystem_servers_tools_while_it_is_down(gw: ServedGateway) -> None:
    async with Client(gw.url) as client:
        wrote = await client.call_tool("fs__write_file", {"path": "hello.txt", "content": "hi there"})
        assert not wrote.is_error, texts(wrote)
        assert texts(await client.call_tool("fs__read_text_file", {"path": "hello.txt"})) == "hi there"

        (fs,) = [p for p in children(gw.proc.pid) if b"server-filesystem" in cmdline(p)]
        os.kill(fs, signal.SIGKILL)
        wait_until(lambda: gw.backend("fs")["state"] == "unavailable", 30, "fs to be unavailable")

        served_by = await client.call_tool("fs__read_text_file", {"path": "hello.txt"})
        assert not served_by.is_error, texts(served_by)
        notice, content = texts(served_by).split("\n", 1)
        assert notice.startswith("[degraded]") and "served by files__read instead" in notice
        assert content == "hi there"
        assert served_by.structured_content == {"content": "hi there"}  # fits fs__read_text_file's outputSchema
        assert (served_by.meta or {})["manifold/degraded"]["served_by"] == "files__read"
