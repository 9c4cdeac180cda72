"""The config `make run` serves: it passes `manifold check`, and served (paths made
absolute, the demo notes API on a free port) every route in it works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import mcp_types as types
import pytest
from conftest import BIN, ROOT, wait_until
from mcp import Client

from gateway.testing import ServedGateway, free_port, served, stop_group

DEFAULT = ROOT / "config" / "manifold.toml"


def test_the_default_config_passes_check() -> None:
    proc = subprocess.run([str(BIN / "manifold"), "check", "--config", str(DEFAULT), "--env-file", os.devnull],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "7 backend(s), 5 route(s)" in proc.stdout


@pytest.fixture
def notes_api() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "manifold_openapi.demo", "--host", "127.0.0.1", "--port", str(port)],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx2.get(f"{base}/notes", timeout=2).status_code == 200
        except httpx2.HTTPError:
            return False

    try:
        wait_until(up, 30, "the demo notes API")
        yield base
    finally:
        stop_group(proc)


@pytest.fixture
def gw(tmp_path: Path, notes_api: str) -> Iterator[ServedGateway]:
    text = DEFAULT.read_text()
    text = text.replace('spec = "plugins/', f'base_url = "{notes_api}"\nspec = "{ROOT}/plugins/')
    text = text.replace('args = ["--repository", "."]', f'args = ["--repository", "{ROOT}"]')
    text = re.sub(r"repo_path = \"\.\"", f'repo_path = "{ROOT}"', text)
    text = re.sub(r"(?m)^port = \d+$", "", text)  # served() picks a free port
    path = f"{BIN}:{os.environ['PATH']}"
    with served(text, tmp_path, env={"PATH": path}) as gateway:
        yield gateway


def texts(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_every_backend_and_route_of_the_default_config_serves(gw: ServedGateway, tmp_path: Path) -> None:
    assert {b["name"]: b["state"] for b in gw.status()["backends"]} == dict.fromkeys(
        ["time", "clock", "git", "example", "db", "files", "notes"], "healthy")
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
