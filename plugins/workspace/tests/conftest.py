"""Fixtures: a workspace backend reached in-process (`connected`) and through a served gateway over HTTP.

Every test that takes `ws` (or `ro_ws`, `small_ws`) runs twice: once against a
fresh in-process gateway, once through one `manifold serve` process shared by
the session. That process serves a pool of backends, each on a root of its own,
and every test takes an unused one, so the tests never see each other's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from manifold_workspace import plugin as workspace_plugin
from mcp import Client

from gateway.testing import ServedGateway, connected, served

KINDS: dict[str, dict[str, Any]] = {
    "files": {},
    "ro": {"read_only": True},
    "small": {"max_read_bytes": 64, "max_write_bytes": 64, "max_results": 3},
}
POOL = 30
"""Backends of each kind in the served gateway: at least as many as tests of that kind."""

SECRET = "outside the root\n"


def first_text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent), block
    return block.text


@dataclass
class Workspace:
    """One backend under test: its client, exposed namespace, root, and a directory outside the root."""

    client: Client
    namespace: str
    root: Path
    outside: Path

    async def call(self, tool: str, **arguments: Any) -> types.CallToolResult:
        return await self.client.call_tool(f"{self.namespace}__{tool}", arguments)

    async def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """Call a tool that must succeed; its structuredContent."""
        result = await self.call(tool, **arguments)
        assert not result.is_error, first_text(result)
        assert result.structured_content is not None
        return result.structured_content

    async def error(self, tool: str, **arguments: Any) -> str:
        """Call a tool that must fail; its error message."""
        result = await self.call(tool, **arguments)
        assert result.is_error, result
        return first_text(result)

    async def tools(self) -> dict[str, types.Tool]:
        prefix = f"{self.namespace}__"
        listed = (await self.client.list_tools()).tools
        return {t.name.removeprefix(prefix): t for t in listed if t.name.startswith(prefix)}


def prepare(slot: Path) -> tuple[Path, Path]:
    """`slot/root` (empty) and `slot/outside` holding secret.txt and a folder."""
    root, outside = slot / "root", slot / "outside"
    root.mkdir(parents=True, exist_ok=True)
    (outside / "folder").mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text(SECRET)
    (outside / "folder" / "inner.txt").write_text(SECRET)
    return root, outside


def to_toml(backends: dict[str, dict[str, Any]]) -> str:
    """The `[backends.*]` tables; JSON strings, numbers and booleans are TOML too."""
    lines: list[str] = []
    for name, table in backends.items():
        lines.append(f"[backends.{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in table.items())
    return "\n".join(lines) + "\n"


class Pool:
    def __init__(self, gateway: ServedGateway, base: Path) -> None:
        self.gateway, self.base = gateway, base
        self.taken = dict.fromkeys(KINDS, 0)

    def take(self, kind: str) -> str:
        n = self.taken[kind]
        if n >= POOL:
            raise RuntimeError(f"the served gateway has only {POOL} {kind!r} backends: raise POOL in conftest.py")
        self.taken[kind] = n + 1
        return f"{kind}{n}"


@pytest.fixture(scope="session")
def served_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    base = tmp_path_factory.mktemp("served")
    backends: dict[str, dict[str, Any]] = {}
    for kind, options in KINDS.items():
        for n in range(POOL):
            root, _ = prepare(base / f"{kind}{n}")
            backends[f"{kind}{n}"] = {"type": "workspace", "root": str(root), **options}
    backends["relative"] = {"type": "workspace", "root": "relative-root"}
    with served(to_toml(backends), base) as gateway:
        yield Pool(gateway, base)


@contextlib.asynccontextmanager
async def open_workspace(
    mode: str, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Workspace]:
    if mode == "in-process":
        root, outside = prepare(tmp_path)
        config = {"backends": {kind: {"type": "workspace", "root": str(root), **KINDS[kind]}}}
        async with connected(config, plugins=[("workspace", workspace_plugin)], entry_points=False) as client:
            yield Workspace(client, kind, root, outside)
        return
    pool: Pool = request.getfixturevalue("served_pool")
    name = pool.take(kind)
    async with pool.gateway.client() as client:
        yield Workspace(client, name, pool.base / name / "root", pool.base / name / "outside")


async def held(manager: contextlib.AbstractAsyncContextManager[Workspace]) -> AsyncIterator[Workspace]:
    """Keep `manager` open in a task of its own for the fixture's life.

    pytest-asyncio sets a fixture up and tears it down in two different tasks, but
    the gateway's cancel scopes must be left in the task that entered them.
    """
    ready: asyncio.Future[Workspace] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def keep() -> None:
        try:
            async with manager as value:
                ready.set_result(value)
                await done.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    task = asyncio.create_task(keep())
    try:
        yield await ready
    finally:
        done.set()
        await task


MODES = ["in-process", "http"]


@pytest.fixture(params=MODES)
async def ws(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Workspace]:
    async for workspace in held(open_workspace(request.param, "files", request, tmp_path)):
        yield workspace


@pytest.fixture(params=MODES)
async def ro_ws(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Workspace]:
    async for workspace in held(open_workspace(request.param, "ro", request, tmp_path)):
        yield workspace


@pytest.fixture(params=MODES)
async def small_ws(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Workspace]:
    async for workspace in held(open_workspace(request.param, "small", request, tmp_path)):
        yield workspace
