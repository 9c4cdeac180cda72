"""Confinement to the root, size limits and read-only, through a gateway: in-process and over HTTP.

Each root comes with a sibling directory `outside` (secret.txt, folder/inner.txt)
that no call may read, change or reveal.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING

import anyio
import pytest
from mcp import MCPError

if TYPE_CHECKING:
    from conftest import Workspace

DOTDOT = "'..' is not allowed; paths stay inside the workspace root"
ABSOLUTE = "absolute paths are not allowed; give a path relative to the workspace root"
THROUGH_SYMLINK = "it leads outside the workspace root through a symlink"


def assert_outside_untouched(ws: Workspace) -> None:
    assert sorted(p.name for p in ws.outside.iterdir()) == ["folder", "secret.txt"]
    assert (ws.outside / "secret.txt").read_text() == "outside the root\n"
    assert [p.name for p in (ws.outside / "folder").iterdir()] == ["inner.txt"]


async def test_dotdot_is_refused_by_every_tool(ws: Workspace) -> None:
    (ws.root / "a").mkdir()
    calls = {
        "read": {"path": "../outside/secret.txt"},
        "stat": {"path": "a/../../outside/secret.txt"},
        "list": {"path": ".."},
        "search": {"path": "../outside", "pattern": "*"},
        "write": {"path": "../outside/secret.txt", "content": "owned"},
        "mkdir": {"path": "../outside/new"},
        "delete": {"path": "../outside/secret.txt"},
    }
    for tool, arguments in calls.items():
        path = arguments["path"]
        assert await ws.error(tool, **arguments) == f"{path!r} is refused: {DOTDOT}", tool
    assert await ws.error("move", source="a", destination="../outside/a") == f"'../outside/a' is refused: {DOTDOT}"
    assert await ws.error("move", source="../outside/secret.txt", destination="stolen.txt") == (
        f"'../outside/secret.txt' is refused: {DOTDOT}"
    )
    # `..` that would stay inside is refused too: the rule is simple, not clever.
    assert DOTDOT in await ws.error("read", path="a/../a")
    assert_outside_untouched(ws)
    assert sorted(p.name for p in ws.root.iterdir()) == ["a"]


async def test_absolute_paths_are_refused(ws: Workspace) -> None:
    (ws.root / "here.txt").write_text("in the root")
    secret = str(ws.outside / "secret.txt")
    assert await ws.error("read", path=secret) == f"{secret!r} is refused: {ABSOLUTE}"
    # Even an absolute path that names a file inside the root.
    inside = str(ws.root / "here.txt")
    assert await ws.error("read", path=inside) == f"{inside!r} is refused: {ABSOLUTE}"
    assert ABSOLUTE in await ws.error("write", path=str(ws.outside / "new.txt"), content="x")
    assert ABSOLUTE in await ws.error("delete", path=secret)
    assert ABSOLUTE in await ws.error("list", path="/")
    assert_outside_untouched(ws)


async def test_a_symlink_to_a_file_outside_is_refused(ws: Workspace) -> None:
    os.symlink("../outside/secret.txt", ws.root / "relative-link")
    os.symlink(ws.outside / "secret.txt", ws.root / "absolute-link")
    for link in ("relative-link", "absolute-link"):
        assert await ws.error("read", path=link) == f"{link!r} is refused: {THROUGH_SYMLINK}"
        assert THROUGH_SYMLINK in await ws.error("stat", path=link)
        assert THROUGH_SYMLINK in await ws.error("write", path=link, content="owned")
        assert THROUGH_SYMLINK in await ws.error("write", path=link, content="owned", overwrite=False)
    found = await ws.ok("search", contains="outside")
    assert found["matches"] == []  # symlinks are never searched inside
    assert_outside_untouched(ws)
    assert os.readlink(ws.root / "relative-link") == "../outside/secret.txt"


async def test_a_symlinked_directory_outside_is_refused(ws: Workspace) -> None:
    os.symlink("../outside", ws.root / "escape")
    (ws.root / "mine.txt").write_text("mine")
    refused = {
        "read": {"path": "escape/secret.txt"},
        "list": {"path": "escape"},
        "search": {"path": "escape"},
        "stat": {"path": "escape/folder/inner.txt"},
        "write": {"path": "escape/new.txt", "content": "x"},
        "mkdir": {"path": "escape/made"},
        "delete": {"path": "escape/secret.txt"},
    }
    for tool, arguments in refused.items():
        assert await ws.error(tool, **arguments) == f"{arguments['path']!r} is refused: {THROUGH_SYMLINK}", tool
    assert THROUGH_SYMLINK in await ws.error("delete", path="escape/folder", recursive=True)
    assert THROUGH_SYMLINK in await ws.error("move", source="escape/secret.txt", destination="stolen.txt")
    assert THROUGH_SYMLINK in await ws.error("move", source="mine.txt", destination="escape/mine.txt")
    assert THROUGH_SYMLINK in await ws.error("write", path="escape/a/b.txt", content="x", create_parents=True)

    listing = await ws.ok("list")
    assert [(e["path"], e["type"]) for e in listing["entries"]] == [("escape", "symlink"), ("mine.txt", "file")]
    found = await ws.ok("search", pattern="*.txt")
    assert [m["path"] for m in found["matches"]] == ["mine.txt"]  # the walk does not enter the symlink
    assert_outside_untouched(ws)
    assert (ws.root / "mine.txt").read_text() == "mine"


async def test_deleting_or_moving_a_symlink_acts_on_the_link_not_its_target(ws: Workspace) -> None:
    os.symlink("../outside", ws.root / "escape-dir")
    os.symlink("../outside/secret.txt", ws.root / "escape-file")
    assert await ws.ok("delete", path="escape-dir", recursive=True) == {"path": "escape-dir", "type": "symlink"}
    assert await ws.ok("delete", path="escape-file") == {"path": "escape-file", "type": "symlink"}
    assert list(ws.root.iterdir()) == []
    assert_outside_untouched(ws)

    (ws.root / "sub").mkdir()
    os.symlink("../../outside/secret.txt", ws.root / "sub" / "link")
    moved = await ws.ok("move", source="sub/link", destination="moved-link")
    assert moved["type"] == "symlink"
    # Moved, the relative link now points elsewhere; it is still refused wherever it points outside.
    assert THROUGH_SYMLINK in await ws.error("read", path="moved-link")
    assert_outside_untouched(ws)


async def test_symlinks_that_stay_inside_are_followed(ws: Workspace) -> None:
    (ws.root / "real").mkdir()
    (ws.root / "real" / "file.txt").write_text("real")
    os.symlink("real", ws.root / "alias")
    os.symlink("real/file.txt", ws.root / "file-link")
    assert (await ws.call("read", path="alias/file.txt")).content[0].text == "real"  # type: ignore[union-attr]
    assert (await ws.call("read", path="file-link")).content[0].text == "real"  # type: ignore[union-attr]
    await ws.ok("write", path="file-link", content="written through")
    assert await anyio.Path(ws.root / "file-link").is_symlink()  # the link stays a link; its target changed
    assert (ws.root / "real" / "file.txt").read_text() == "written through"
    await ws.ok("write", path="alias/new.txt", content="new")
    assert (ws.root / "real" / "new.txt").read_text() == "new"
    assert [e["path"] for e in (await ws.ok("list", path="alias"))["entries"]] == ["alias/file.txt", "alias/new.txt"]


async def test_size_limits(small_ws: Workspace) -> None:
    ws = small_ws
    (ws.root / "fits.txt").write_text("x" * 64)
    (ws.root / "big.txt").write_text("x" * 65)
    assert (await ws.ok("read", path="fits.txt"))["size"] == 64
    assert await ws.error("read", path="big.txt") == (
        "read 'big.txt': the file is 65 bytes, more than max_read_bytes (64)"
    )
    message = await ws.error("write", path="new.txt", content="y" * 65)
    assert message == "write 'new.txt': the content is 65 bytes, more than max_write_bytes (64)"
    assert not (ws.root / "new.txt").exists()
    assert "max_write_bytes" in await ws.error("write", path="new.bin", encoding="base64",
                                               content=base64.b64encode(b"z" * 65).decode())
    # Multi-byte characters count as their UTF-8 bytes.
    assert "max_write_bytes" in await ws.error("write", path="new.txt", content="é" * 33)
    await ws.ok("write", path="new.txt", content="é" * 32)
    # A file too large to read is not searched inside, and the search says so.
    found = await ws.ok("search", contains="x")
    assert [m["path"] for m in found["matches"]] == ["fits.txt"] and found["skipped"] == 1


async def test_max_results_bounds_list_and_search(small_ws: Workspace) -> None:
    ws = small_ws
    for n in range(5):
        (ws.root / f"f{n}.txt").write_text("hit\nhit\n")
    listing = await ws.ok("list")
    assert [e["path"] for e in listing["entries"]] == ["f0.txt", "f1.txt", "f2.txt"]
    assert listing["truncated"] is True
    found = await ws.ok("search", max_results=100)  # capped by the backend's max_results (3)
    assert len(found["matches"]) == 3 and found["truncated"] is True
    found = await ws.ok("search", contains="hit")
    assert [(m["path"], m["line"]) for m in found["matches"]] == [("f0.txt", 1), ("f0.txt", 2), ("f1.txt", 1)]


async def test_read_only_lists_only_the_reading_tools_and_changes_nothing(ro_ws: Workspace) -> None:
    ws = ro_ws
    (ws.root / "doc.txt").write_text("read me")
    tools = await ws.tools()
    assert set(tools) == {"read", "list", "search", "stat"}
    assert all(t.annotations is not None and t.annotations.read_only_hint for t in tools.values())
    assert (await ws.ok("read", path="doc.txt"))["size"] == 7
    assert (await ws.ok("search", contains="read"))["matches"][0]["line"] == 1
    for tool, arguments in {
        "write": {"path": "doc.txt", "content": "changed"},
        "delete": {"path": "doc.txt"},
        "move": {"source": "doc.txt", "destination": "moved.txt"},
        "mkdir": {"path": "d"},
    }.items():
        with pytest.raises(MCPError, match=f"{ws.namespace}__{tool}"):
            await ws.call(tool, **arguments)
    assert [p.name for p in ws.root.iterdir()] == ["doc.txt"]
    assert (ws.root / "doc.txt").read_text() == "read me"
