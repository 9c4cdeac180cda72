"""The `workspace` backend type: file operations confined to one root directory.

    [backends.files]
    type = "workspace"
    root = "workspace"          # relative to the gateway's working directory; created if missing
    read_only = false

Tools: read, write, mkdir, list, search, move, delete, stat. Every path is
relative to the root; `..`, absolute paths and symlinks that lead out of the
root are refused (see `root.py`). Files are also resources, through the
template `workspace://<backend>/{path}` (the path percent-encoded, `/` too).
"""

from __future__ import annotations

import base64
import contextlib
import errno
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote, unquote

import anyio
import mcp_types as types
from mcp import MCPError
from pydantic import Field

from gateway import BackendConfig, CallContext, LocalBackend, ToolError, error_result, tool
from manifold_workspace import files
from manifold_workspace.files import FileData, Info
from manifold_workspace.root import Root
from manifold_workspace.search import Found, find

T = TypeVar("T")

MIB = 1 << 20
SCHEME = "workspace"
WRITE_TOOLS = frozenset({"write", "mkdir", "move", "delete"})
"""Not listed, and refused, when the backend is `read_only`."""

DEFAULT_EXCLUDE = [".git", ".hg", ".svn", ".venv", "node_modules", "__pycache__"]

PathArg = Annotated[str, Field(description="path relative to the workspace root, e.g. notes/todo.md")]
DirArg = Annotated[str, Field(description="directory relative to the workspace root; '.' is the root")]

_REASONS = {
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.ENOTEMPTY: "the destination is a directory that is not empty",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ELOOP: "too many levels of symlinks, or a symlink appeared on the path while it was in use",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.ENAMETOOLONG: "file name too long",
    errno.EINVAL: "invalid argument",
}


def _reason(exc: OSError) -> str:
    """What the file system said, without the absolute path an `OSError` may carry."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return exc.strerror or type(exc).__name__


class WorkspaceConfig(BackendConfig):
    """`[backends.<name>]` of `type = "workspace"`."""

    root: Path = Field(
        description="the directory the tools work in; relative to the gateway's working directory; "
        "created (with its parents) when missing, unless read_only"
    )
    read_only: bool = Field(default=False, description="only read, list, search and stat; the others are not listed")
    max_read_bytes: int = Field(default=10 * MIB, ge=1, description="largest file read returns or search looks into")
    max_write_bytes: int = Field(default=10 * MIB, ge=1, description="largest content write accepts (decoded)")
    max_results: int = Field(default=1000, ge=1, description="most entries list returns, and most matches search may")
    search_exclude: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDE),
        description="globs on entry names that search never enters or returns",
    )


def _result(text: str, structured: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=structured)


def _size(n: int | None) -> str:
    return "-" if n is None else str(n)


def _render_listing(listing: files.Listing) -> str:
    lines = [f"{e.type:<9} {_size(e.size):>10}  {e.path}{'/' if e.type == 'directory' else ''}"
             for e in listing.entries]
    if not lines:
        lines.append(f"{listing.path}: empty directory")
    if listing.truncated:
        lines.append(f"(truncated: more than {len(listing.entries)} entries; max_results)")
    return "\n".join(lines)


def _render_found(found: Found) -> str:
    lines = [f"{m.path}:{m.line}: {m.text}" if m.line is not None else m.path for m in found.matches]
    if not lines:
        lines.append("no matches")
    if found.truncated:
        lines.append(f"(truncated: stopped at {len(found.matches)} matches)")
    if found.skipped:
        lines.append(f"({found.skipped} matching files not searched: binary, or larger than max_read_bytes)")
    return "\n".join(lines)


class WorkspaceBackend(LocalBackend):
    """Files under one root directory."""

    type_name = "workspace"
    Config = WorkspaceConfig
    config: WorkspaceConfig

    def __init__(self, name: str, config: WorkspaceConfig) -> None:
        super().__init__(name, config)
        self._root: Root | None = None

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        root = await anyio.to_thread.run_sync(
            lambda: Root.open(self.config.root, create=not self.config.read_only)
        )
        self._root = root
        try:
            yield
        finally:
            self._root = None
            root.close()

    async def check(self) -> None:
        await self._run(Root.check)

    async def list_tools(self) -> list[types.Tool]:
        tools = await super().list_tools()
        if self.config.read_only:
            return [t for t in tools if t.name not in WRITE_TOOLS]
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        if self.config.read_only and name in WRITE_TOOLS:
            return error_result(f"workspace backend {self.name!r} is read-only: {name} is refused")
        return await super().call_tool(name, arguments, ctx)

    async def _run(self, work: Callable[[Root], T], label: str = "") -> T:
        """Run blocking file work in a worker thread, on a root descriptor of the call's own.

        The worker is never abandoned (a cancelled call waits for it; long loops
        check for cancellation), so the descriptor is closed only once it is done.
        """
        if self._root is None:
            raise ToolError(f"workspace backend {self.name!r} is not open")
        root = self._root.dup()
        try:
            return await anyio.to_thread.run_sync(work, root)
        except OSError as exc:
            raise ToolError(f"{label}: {_reason(exc)}" if label else _reason(exc)) from None
        finally:
            root.close()

    # -- reading -------------------------------------------------------------------

    def _uri(self, path: str) -> str:
        return f"{SCHEME}://{self.name}/{quote(path, safe='')}"

    async def _read(self, path: str) -> FileData:
        max_bytes = self.config.max_read_bytes
        return await self._run(lambda root: files.read(root, path, max_bytes), f"read {path!r}")

    @tool(read_only=True)
    async def read(self, path: PathArg) -> types.CallToolResult:
        """Read a file. UTF-8 text comes back as text; anything else as an embedded resource (base64 blob).

        structuredContent carries path, size, mime_type and encoding (utf-8 or base64),
        not the contents. Files larger than max_read_bytes are refused.
        """
        data = await self._read(path)
        text = data.text()
        mime = data.mime_type or ("text/plain" if text is not None else "application/octet-stream")
        meta = {"path": data.path, "size": len(data.data), "mime_type": mime}
        if text is not None:
            block: types.ContentBlock = types.TextContent(type="text", text=text)
            return types.CallToolResult(content=[block], structured_content={**meta, "encoding": "utf-8"})
        blob = types.BlobResourceContents(
            uri=self._uri(data.path), mime_type=mime, blob=base64.b64encode(data.data).decode("ascii")
        )
        summary = f"{data.path}: {len(data.data)} bytes of {mime} (binary, embedded as a resource)"
        content: list[types.ContentBlock] = [
            types.TextContent(type="text", text=summary),
            types.EmbeddedResource(type="resource", resource=blob),
        ]
        return types.CallToolResult(content=content, structured_content={**meta, "encoding": "base64"})

    @tool(read_only=True)
    async def stat(self, path: PathArg) -> types.CallToolResult:
        """Describe one entry: type (file, directory, symlink, other), size, modified time, mode.

        A symlink inside the root is followed (and `symlink` is true); one that leads out is refused.
        """
        found: Info = await self._run(lambda root: files.info(root, path), f"stat {path!r}")
        d = found.as_dict()
        return _result("\n".join(f"{k}: {'-' if v is None else v}" for k, v in d.items()), d)

    @tool(name="list", read_only=True)
    async def list_entries(self, path: DirArg = ".") -> types.CallToolResult:
        """List a directory: each entry's name, path, type, size (files only) and modified time.

        Entries are sorted by name; at most max_results of them (`truncated` says when there were more).
        Symlinks are listed as type symlink, not followed.
        """
        limit = self.config.max_results
        listing = await self._run(lambda root: files.list_dir(root, path, limit), f"list {path!r}")
        structured = {"path": listing.path, "entries": [e.as_dict() for e in listing.entries],
                      "truncated": listing.truncated}
        return _result(_render_listing(listing), structured)

    @tool(read_only=True)
    async def search(
        self,
        pattern: Annotated[str, Field(description="glob; without '/' it matches names at any depth ('*.py'), "
                                      "with '/' the path below `path` ('src/**/test_*.py')")] = "*",
        path: DirArg = ".",
        contains: Annotated[str | None, Field(description="also search inside matching text files for "
                                              "lines containing this")] = None,
        regex: Annotated[bool, Field(description="contains is a Python regular expression")] = False,
        case_sensitive: bool = True,
        max_results: Annotated[int, Field(ge=1, description="most matches returned (capped by the "
                                          "backend's max_results)")] = 100,
    ) -> types.CallToolResult:
        """Find files and directories by glob, optionally the lines inside them that contain a text.

        Returns `matches`: each with path, type and size, plus line and text for a
        content search; `truncated` when it stopped at max_results. Never follows
        symlinks; skips the backend's search_exclude names (.git, .venv, node_modules ...).
        """
        cfg = self.config
        limit = min(max_results, cfg.max_results)

        def work(root: Root) -> Found:
            return find(root, path, pattern, contains=contains, regex=regex, case_sensitive=case_sensitive,
                          max_results=limit, max_file_bytes=cfg.max_read_bytes, exclude=cfg.search_exclude)

        found = await self._run(work, f"search {path!r}")
        structured = {"path": found.path, "pattern": pattern, "contains": contains,
                      "matches": [m.as_dict() for m in found.matches], "truncated": found.truncated,
                      "skipped": found.skipped}
        return _result(_render_found(found), structured)

    # -- writing -------------------------------------------------------------------

    def _writable(self, tool_name: str) -> None:
        if self.config.read_only:
            raise ToolError(f"workspace backend {self.name!r} is read-only: {tool_name} is refused")

    @tool(destructive=True, idempotent=True)
    async def write(
        self,
        path: PathArg,
        content: Annotated[str, Field(description="the new contents: text, or base64 with encoding='base64'")],
        encoding: Literal["utf-8", "base64"] = "utf-8",
        create_parents: Annotated[bool, Field(description="create missing parent directories")] = False,
        overwrite: Annotated[bool, Field(description="replace an existing file; false refuses it")] = True,
    ) -> types.CallToolResult:
        """Create or replace a file (atomically: readers see the old or the new contents, never half).

        An existing file keeps its permissions. Contents larger than max_write_bytes are refused.
        """
        self._writable("write")
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=True)
            except ValueError:
                raise ToolError(f"write {path!r}: content is not valid base64") from None
        else:
            data = content.encode("utf-8")
        if len(data) > self.config.max_write_bytes:
            raise ToolError(f"write {path!r}: the content is {len(data)} bytes, more than max_write_bytes "
                            f"({self.config.max_write_bytes})")
        written = await self._run(
            lambda root: files.write(root, path, data, create_parents=create_parents, overwrite=overwrite),
            f"write {path!r}",
        )
        verb = "created" if written.created else "replaced"
        return _result(f"{verb} {written.path} ({written.size} bytes)",
                       {"path": written.path, "size": written.size, "created": written.created})

    @tool(destructive=False, idempotent=True)
    async def mkdir(self, path: PathArg) -> types.CallToolResult:
        """Create a directory, and its missing parents. An existing directory is not an error."""
        self._writable("mkdir")
        shown, created = await self._run(lambda root: files.mkdir(root, path), f"mkdir {path!r}")
        return _result(f"{'created' if created else 'exists already:'} {shown}/", {"path": shown, "created": created})

    @tool(destructive=True)
    async def move(
        self,
        source: PathArg,
        destination: Annotated[str, Field(description="the new path (not a directory to move into)")],
        overwrite: Annotated[bool, Field(description="replace an existing destination file")] = False,
        create_parents: Annotated[bool, Field(description="create the destination's missing parents")] = False,
    ) -> types.CallToolResult:
        """Move or rename a file or directory within the root. A symlink is moved as the link itself."""
        self._writable("move")
        src, dst, kind = await self._run(
            lambda root: files.move(root, source, destination, overwrite=overwrite, create_parents=create_parents),
            f"move {source!r} -> {destination!r}",
        )
        return _result(f"moved {kind} {src} to {dst}", {"source": src, "destination": dst, "type": kind})

    @tool(destructive=True)
    async def delete(
        self,
        path: PathArg,
        recursive: Annotated[bool, Field(description="required to delete a directory and all it holds")] = False,
    ) -> types.CallToolResult:
        """Delete a file or symlink (the link, not its target); a directory only with recursive=true."""
        self._writable("delete")
        shown, kind = await self._run(lambda root: files.delete(root, path, recursive=recursive), f"delete {path!r}")
        return _result(f"deleted {kind} {shown}", {"path": shown, "type": kind})

    # -- resources -----------------------------------------------------------------

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        return [
            types.ResourceTemplate(
                uri_template=f"{SCHEME}://{self.name}/{{path}}",
                name="workspace file",
                description="a file under the workspace root; the path percent-encoded, '/' as %2F",
            )
        ]

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        prefix = f"{SCHEME}://{self.name}/"
        if not uri.startswith(prefix) or len(uri) == len(prefix):
            raise MCPError(types.INVALID_PARAMS, f"{uri!r} is not a file of workspace backend {self.name!r}")
        try:
            data = await self._read(unquote(uri[len(prefix) :]))
        except ToolError as exc:
            raise MCPError(-32002, str(exc)) from None
        text = data.text()
        contents: types.TextResourceContents | types.BlobResourceContents
        if text is not None:
            contents = types.TextResourceContents(uri=uri, mime_type=data.mime_type or "text/plain", text=text)
        else:
            contents = types.BlobResourceContents(uri=uri, mime_type=data.mime_type or "application/octet-stream",
                                                  blob=base64.b64encode(data.data).decode("ascii"))
        return types.ReadResourceResult(contents=[contents])
