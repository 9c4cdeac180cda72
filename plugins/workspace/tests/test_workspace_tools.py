"""The workspace tools through a gateway: in-process and over HTTP (see conftest.py)."""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING
from urllib.parse import quote

import mcp_types as types

if TYPE_CHECKING:
    from conftest import Workspace

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"


async def test_tools_and_their_annotations(ws: Workspace) -> None:
    tools = await ws.tools()
    assert set(tools) == {"read", "write", "mkdir", "list", "search", "move", "delete", "stat"}
    for name in ("read", "list", "search", "stat"):
        annotations = tools[name].annotations
        assert annotations is not None and annotations.read_only_hint, name
    for name in ("write", "move", "delete"):
        annotations = tools[name].annotations
        assert annotations is not None and not annotations.read_only_hint and annotations.destructive_hint, name
    assert tools["read"].input_schema["required"] == ["path"]
    assert tools["write"].input_schema["properties"]["encoding"]["enum"] == ["utf-8", "base64"]


async def test_write_creates_then_replaces_and_read_returns_the_text(ws: Workspace) -> None:
    created = await ws.ok("write", path="notes.md", content="héllo\nworld\n")
    assert created == {"path": "notes.md", "size": len("héllo\nworld\n".encode()), "created": True}
    assert (ws.root / "notes.md").read_text() == "héllo\nworld\n"

    (ws.root / "notes.md").chmod(0o600)
    replaced = await ws.ok("write", path="./notes.md", content="new")
    assert replaced["created"] is False
    assert (ws.root / "notes.md").read_text() == "new"
    assert (ws.root / "notes.md").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in ws.root.iterdir()] == ["notes.md"]  # no temporary file left behind

    result = await ws.call("read", path="notes.md")
    assert not result.is_error
    assert result.content == [types.TextContent(type="text", text="new")]
    assert result.structured_content == {"path": "notes.md", "size": 3, "mime_type": "text/markdown",
                                         "encoding": "utf-8"}


async def test_write_needs_create_parents_for_a_new_folder(ws: Workspace) -> None:
    message = await ws.error("write", path="a/b/c.txt", content="x")
    assert message == "write 'a/b/c.txt': no such file or directory"
    assert not (ws.root / "a").exists()
    await ws.ok("write", path="a/b/c.txt", content="x", create_parents=True)
    assert (ws.root / "a" / "b" / "c.txt").read_text() == "x"


async def test_write_with_overwrite_false_keeps_an_existing_file(ws: Workspace) -> None:
    (ws.root / "keep.txt").write_text("old")
    message = await ws.error("write", path="keep.txt", content="new", overwrite=False)
    assert "keep.txt" in message and "already exists" in message
    assert (ws.root / "keep.txt").read_text() == "old"
    assert (await ws.ok("write", path="fresh.txt", content="new", overwrite=False))["created"] is True
    assert (ws.root / "fresh.txt").read_text() == "new"


async def test_write_refuses_a_directory(ws: Workspace) -> None:
    (ws.root / "dir").mkdir()
    assert await ws.error("write", path="dir", content="x") == "write 'dir': is a directory"
    assert "workspace root" in await ws.error("write", path=".", content="x")


async def test_binary_files_are_read_as_an_embedded_blob(ws: Workspace) -> None:
    (ws.root / "img").mkdir()
    (ws.root / "img" / "logo.png").write_bytes(PNG)
    result = await ws.call("read", path="img/logo.png")
    assert not result.is_error
    assert result.structured_content == {"path": "img/logo.png", "size": len(PNG), "mime_type": "image/png",
                                         "encoding": "base64"}
    summary, embedded = result.content
    assert isinstance(summary, types.TextContent) and "binary" in summary.text
    assert isinstance(embedded, types.EmbeddedResource)
    blob = embedded.resource
    assert isinstance(blob, types.BlobResourceContents)
    assert blob.mime_type == "image/png"
    assert base64.b64decode(blob.blob) == PNG
    assert blob.uri == f"workspace://{ws.namespace}/img%2Flogo.png"


async def test_text_with_nul_bytes_or_bad_utf8_is_binary(ws: Workspace) -> None:
    (ws.root / "nul.txt").write_bytes(b"a\x00b")
    (ws.root / "latin1.txt").write_bytes("café".encode("latin-1"))
    for name, data in (("nul.txt", b"a\x00b"), ("latin1.txt", "café".encode("latin-1"))):
        result = await ws.call("read", path=name)
        assert result.structured_content is not None and result.structured_content["encoding"] == "base64"
        embedded = result.content[1]
        assert isinstance(embedded, types.EmbeddedResource)
        assert isinstance(embedded.resource, types.BlobResourceContents)
        assert base64.b64decode(embedded.resource.blob) == data


async def test_write_base64_writes_the_bytes(ws: Workspace) -> None:
    await ws.ok("write", path="raw.bin", content=base64.b64encode(PNG).decode(), encoding="base64")
    assert (ws.root / "raw.bin").read_bytes() == PNG
    message = await ws.error("write", path="raw2.bin", content="not base64!", encoding="base64")
    assert message == "write 'raw2.bin': content is not valid base64"
    assert not (ws.root / "raw2.bin").exists()


async def test_files_are_resources_through_the_template(ws: Workspace) -> None:
    templates = (await ws.client.list_resource_templates()).resource_templates
    assert f"workspace://{ws.namespace}/{{path}}" in [t.uri_template for t in templates]
    (ws.root / "docs").mkdir()
    (ws.root / "docs" / "a b.txt").write_text("spaced")
    (ws.root / "blob.bin").write_bytes(PNG)

    read = await ws.client.read_resource(f"workspace://{ws.namespace}/{quote('docs/a b.txt', safe='')}")
    (content,) = read.contents
    assert isinstance(content, types.TextResourceContents) and content.text == "spaced"
    read = await ws.client.read_resource(f"workspace://{ws.namespace}/blob.bin")
    (content,) = read.contents
    assert isinstance(content, types.BlobResourceContents) and base64.b64decode(content.blob) == PNG


async def test_list_gives_each_entry_its_type_and_size(ws: Workspace) -> None:
    (ws.root / "b.txt").write_text("12345")
    (ws.root / "a").mkdir()
    (ws.root / "a" / "deep.txt").write_text("x")
    os.symlink("b.txt", ws.root / "c-link")
    os.mkfifo(ws.root / "d-fifo")
    listing = await ws.ok("list")
    assert listing["path"] == "." and listing["truncated"] is False
    entries = [(e["path"], e["type"], e["size"]) for e in listing["entries"]]
    assert entries == [("a", "directory", None), ("b.txt", "file", 5), ("c-link", "symlink", None),
                       ("d-fifo", "other", None)]
    assert (await ws.ok("list", path="a"))["entries"][0]["path"] == "a/deep.txt"
    result = await ws.call("list")
    assert "b.txt" in result.content[0].text  # type: ignore[union-attr]

    assert await ws.error("list", path="b.txt") == "list 'b.txt': a component of the path is not a directory"
    assert await ws.error("list", path="missing") == "list 'missing': no such file or directory"


async def test_stat_follows_a_symlink_inside_the_root(ws: Workspace) -> None:
    (ws.root / "f.txt").write_text("abc")
    os.symlink("f.txt", ws.root / "link")
    described = await ws.ok("stat", path="f.txt")
    assert described["type"] == "file" and described["size"] == 3 and described["symlink"] is False
    assert described["modified"].endswith("+00:00")
    linked = await ws.ok("stat", path="link")
    assert linked["type"] == "file" and linked["size"] == 3 and linked["symlink"] is True
    assert (await ws.ok("stat", path="."))["type"] == "directory"
    assert await ws.error("stat", path="nope") == "stat 'nope': no such file or directory"


async def test_read_errors_name_the_path_and_the_reason(ws: Workspace) -> None:
    (ws.root / "dir").mkdir()
    os.mkfifo(ws.root / "fifo")
    assert await ws.error("read", path="nope.txt") == "read 'nope.txt': no such file or directory"
    assert await ws.error("read", path="dir") == "read 'dir': is a directory; the list tool shows its entries"
    assert await ws.error("read", path="fifo") == "read 'fifo': not a regular file (other)"


async def test_mkdir_makes_parents_and_accepts_an_existing_directory(ws: Workspace) -> None:
    assert await ws.ok("mkdir", path="x/y/z") == {"path": "x/y/z", "created": True}
    assert (ws.root / "x" / "y" / "z").is_dir()
    assert await ws.ok("mkdir", path="x/y") == {"path": "x/y", "created": False}
    (ws.root / "file").write_text("")
    assert "not a directory" in await ws.error("mkdir", path="file")


async def test_search_by_name_and_by_path_glob(ws: Workspace) -> None:
    for rel in ("src/app.py", "src/pkg/test_app.py", "src/pkg/util.txt", "top.py", ".git/hook.py",
                "node_modules/m/index.py"):
        (ws.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws.root / rel).write_text("print('hi')\n")
    found = await ws.ok("search", pattern="*.py")
    assert [m["path"] for m in found["matches"]] == ["src/app.py", "src/pkg/test_app.py", "top.py"]
    assert found["matches"][0] == {"path": "src/app.py", "type": "file", "size": 12}
    found = await ws.ok("search", pattern="src/**/test_*.py")
    assert [m["path"] for m in found["matches"]] == ["src/pkg/test_app.py"]
    found = await ws.ok("search", pattern="pkg/*", path="src")
    assert [m["path"] for m in found["matches"]] == ["src/pkg/test_app.py", "src/pkg/util.txt"]
    found = await ws.ok("search", pattern="pkg")
    assert found["matches"] == [{"path": "src/pkg", "type": "directory", "size": None}]
    found = await ws.ok("search", pattern="*", max_results=2)
    assert len(found["matches"]) == 2 and found["truncated"] is True
    assert (await ws.ok("search", pattern="*.nothing"))["matches"] == []


async def test_search_inside_files(ws: Workspace) -> None:
    (ws.root / "a.txt").write_text("alpha\nBeta\ngamma beta\n")
    (ws.root / "b.md").write_text("no match here\n")
    (ws.root / "c.bin").write_bytes(b"beta\x00\xff")
    found = await ws.ok("search", contains="beta")
    assert [(m["path"], m["line"], m["text"]) for m in found["matches"]] == [("a.txt", 3, "gamma beta")]
    assert found["skipped"] == 1  # c.bin: binary
    found = await ws.ok("search", contains="beta", case_sensitive=False, pattern="*.txt")
    assert [m["line"] for m in found["matches"]] == [2, 3]
    found = await ws.ok("search", contains=r"^[ab]\w+a$", regex=True)
    assert [m["text"] for m in found["matches"]] == ["alpha"]
    result = await ws.call("search", contains="beta")
    assert result.content[0].text.splitlines()[0] == "a.txt:3: gamma beta"  # type: ignore[union-attr]
    assert "bad regular expression" in await ws.error("search", contains="(", regex=True)


async def test_move_renames_within_the_root(ws: Workspace) -> None:
    (ws.root / "a.txt").write_text("a")
    (ws.root / "b.txt").write_text("b")
    moved = await ws.ok("move", source="a.txt", destination="sub/a.txt", create_parents=True)
    assert moved == {"source": "a.txt", "destination": "sub/a.txt", "type": "file"}
    assert (ws.root / "sub" / "a.txt").read_text() == "a" and not (ws.root / "a.txt").exists()

    assert "overwrite is false" in await ws.error("move", source="b.txt", destination="sub/a.txt")
    assert (ws.root / "sub" / "a.txt").read_text() == "a"
    await ws.ok("move", source="b.txt", destination="sub/a.txt", overwrite=True)
    assert (ws.root / "sub" / "a.txt").read_text() == "b"

    assert "into itself" in await ws.error("move", source="sub", destination="sub/deeper")
    assert await ws.error("move", source="gone", destination="x") == "move 'gone' -> 'x': no such file or directory"
    assert "root itself" in await ws.error("move", source=".", destination="x")
    await ws.ok("move", source="sub", destination="renamed")
    assert (ws.root / "renamed" / "a.txt").is_file()


async def test_delete_files_and_directories_only_when_recursive(ws: Workspace) -> None:
    (ws.root / "f.txt").write_text("x")
    (ws.root / "d" / "e").mkdir(parents=True)
    (ws.root / "d" / "e" / "g.txt").write_text("x")
    assert await ws.ok("delete", path="f.txt") == {"path": "f.txt", "type": "file"}
    assert not (ws.root / "f.txt").exists()
    message = await ws.error("delete", path="d")
    assert message.startswith("delete 'd': is a directory") and "recursive=true" in message
    assert (ws.root / "d" / "e" / "g.txt").exists()
    assert await ws.ok("delete", path="d", recursive=True) == {"path": "d", "type": "directory"}
    assert not (ws.root / "d").exists()
    assert await ws.error("delete", path="d") == "delete 'd': no such file or directory"
    assert "root itself" in await ws.error("delete", path=".", recursive=True)
    assert ws.root.is_dir()
