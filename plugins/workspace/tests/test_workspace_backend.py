"""The backend class itself: config, registration, the root's life, and the checks below the tools."""

from __future__ import annotations

import errno
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
import pytest
from manifold_workspace import WorkspaceBackend, WorkspaceConfig
from manifold_workspace import plugin as workspace_plugin
from manifold_workspace.files import open_file
from manifold_workspace.root import Root
from manifold_workspace.search import compile_glob
from mcp import MCPError
from pydantic import ValidationError

from gateway import Backend, CallContext
from gateway.testing import connected

if TYPE_CHECKING:
    from conftest import Pool


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def call(backend: WorkspaceBackend, tool: str, **arguments: Any) -> types.CallToolResult:
    return await backend.call_tool(tool, arguments, CallContext())


def test_config_defaults_and_mistakes() -> None:
    config = WorkspaceConfig(root=Path("files"))
    assert (config.max_read_bytes, config.max_write_bytes) == (10 * 2**20, 10 * 2**20)
    assert config.read_only is False and ".git" in config.search_exclude
    with pytest.raises(ValidationError, match="root"):
        WorkspaceConfig.model_validate({})
    with pytest.raises(ValidationError, match="extra"):
        WorkspaceConfig.model_validate({"root": ".", "max_read_byte": 1})
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        WorkspaceConfig.model_validate({"root": ".", "max_write_bytes": 0})


def test_the_plugin_registers_the_backend_type() -> None:
    registered: list[type[Backend]] = []
    workspace_plugin.register_backend_types(registered.append)
    assert registered == [WorkspaceBackend]
    assert WorkspaceBackend.type_name == "workspace"
    (found,) = [ep for ep in entry_points(group="manifold") if ep.name == "workspace"]
    assert found.load() is workspace_plugin


async def test_a_relative_root_is_made_in_the_working_directory(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = {"backends": {"files": {"type": "workspace", "root": "made/here"}}}
    async with connected(config, plugins=[("workspace", workspace_plugin)], entry_points=False) as client:
        result = await client.call_tool("files__write", {"path": "x.txt", "content": "x"})
        assert not result.is_error, text(result)
    assert (tmp_path / "made" / "here" / "x.txt").read_text() == "x"


def test_a_served_gateway_resolves_a_relative_root_against_its_working_directory(served_pool: Pool) -> None:
    assert served_pool.gateway.backend("relative")["state"] == "healthy"
    assert (served_pool.base / "relative-root").is_dir()


async def test_a_read_only_backend_never_creates_its_root(tmp_path: Path) -> None:
    backend = WorkspaceBackend("ro", WorkspaceConfig(root=tmp_path / "absent", read_only=True))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        async with backend.open():
            pass
    assert not (tmp_path / "absent").exists()
    (tmp_path / "a-file").write_text("")
    backend = WorkspaceBackend("ro", WorkspaceConfig(root=tmp_path / "a-file"))
    with pytest.raises(NotADirectoryError, match="not a directory"):
        async with backend.open():
            pass


async def test_a_read_only_backend_refuses_writes_even_when_called_directly(tmp_path: Path) -> None:
    backend = WorkspaceBackend("ro", WorkspaceConfig(root=tmp_path, read_only=True))
    async with backend.open():
        for tool, arguments in (("write", {"path": "a", "content": "x"}), ("delete", {"path": "a"}),
                                ("mkdir", {"path": "d"}), ("move", {"source": "a", "destination": "b"})):
            result = await call(backend, tool, **arguments)
            assert result.is_error and text(result) == f"workspace backend 'ro' is read-only: {tool} is refused"
    assert [p async for p in anyio.Path(tmp_path).iterdir()] == []


async def test_check_fails_once_the_root_is_removed_or_replaced(tmp_path: Path) -> None:
    backend = WorkspaceBackend("files", WorkspaceConfig(root=tmp_path / "root"))
    async with backend.open():
        await backend.check()
        (tmp_path / "root").rename(tmp_path / "elsewhere")
        with pytest.raises(RuntimeError, match="was removed"):
            await backend.check()
        (tmp_path / "root").mkdir()
        with pytest.raises(RuntimeError, match="removed or replaced"):
            await backend.check()


async def test_a_closed_backend_says_so(tmp_path: Path) -> None:
    backend = WorkspaceBackend("files", WorkspaceConfig(root=tmp_path))
    result = await call(backend, "list")
    assert result.is_error and text(result) == "workspace backend 'files' is not open"


def test_a_directory_swapped_for_a_symlink_after_the_check_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "root" / "d").mkdir(parents=True)
    (tmp_path / "root" / "d" / "f.txt").write_text("inside")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f.txt").write_text("outside")
    root = Root.open(tmp_path / "root", create=False)
    try:
        target = root.resolve("d/f.txt")  # checked: inside the root
        (tmp_path / "root" / "d").rename(tmp_path / "root" / "d-old")
        os.symlink("../outside", tmp_path / "root" / "d")  # ... then swapped before the open
        with pytest.raises(OSError) as caught:
            open_file(root, target, os.O_RDONLY)
        assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
    finally:
        root.close()


async def test_read_resource_refuses_foreign_and_escaping_uris(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink("../secret.txt", tmp_path / "root" / "link")
    backend = WorkspaceBackend("files", WorkspaceConfig(root=tmp_path / "root"))
    async with backend.open():
        for uri in ("workspace://other/a.txt", "workspace://files/", "file:///etc/passwd"):
            with pytest.raises(MCPError, match="is not a file of workspace backend 'files'"):
                await backend.read_resource(uri)
        for uri in ("workspace://files/..%2Fsecret.txt", "workspace://files/link", "workspace://files/%2Fetc%2Fpasswd"):
            with pytest.raises(MCPError, match="is refused"):
                await backend.read_resource(uri)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.py", "a/b/c.py", True),
        ("*.py", "a/b/c.pyc", False),
        ("c.p?", "a/c.py", True),
        ("[ab].txt", "x/b.txt", True),
        ("[!ab].txt", "x/b.txt", False),
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/sub/a.py", False),
        ("src/**/*.py", "src/a.py", True),
        ("src/**/*.py", "src/x/y/a.py", True),
        ("src/**", "src/x/y", True),
        ("src/**", "other/x", False),
        ("**/test_*.py", "test_a.py", True),
        ("a.b", "a-b", False),
    ],
)
def test_globs(pattern: str, path: str, expected: bool) -> None:
    assert compile_glob(pattern)(path, path.rsplit("/", 1)[-1]) is expected


async def test_a_search_walks_in_a_worker_thread_and_stops_at_max_results(tmp_path: Path) -> None:
    for n in range(50):
        (tmp_path / f"{n:02}.txt").write_text("x")
    backend = WorkspaceBackend("files", WorkspaceConfig(root=tmp_path, max_results=10))
    async with backend.open():
        seen: list[str] = []

        async def search() -> None:
            result = await call(backend, "search", pattern="*.txt")
            assert result.structured_content is not None
            seen.extend(m["path"] for m in result.structured_content["matches"])

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(search)
    assert len(seen) == 40 and sorted(set(seen)) == [f"{n:02}.txt" for n in range(10)]
