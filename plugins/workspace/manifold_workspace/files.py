"""File operations on a `Root`: read, write, make directories, list, stat, move, delete.

Each function blocks (the backend runs it in a worker thread), checks its paths
through `Root.resolve`, and returns a frozen value. Failures are `ToolError`
(refusals, limits) or `OSError` (what the file system said), which the backend
turns into an error result naming the path.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import mimetypes
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from typing import Any

from anyio import from_thread

from gateway import ToolError
from manifold_workspace.root import Root, Target, kind

CHUNK_BYTES = 1 << 20


def _modified(st: os.stat_result) -> str:
    return datetime.datetime.fromtimestamp(st.st_mtime, datetime.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Info:
    """What `stat` and `list` say about one entry."""

    path: str
    type: str
    size: int | None
    modified: str
    mode: str
    symlink: bool = False
    """The path is a symlink (`stat` follows one inside the root; `list` shows the link itself)."""

    @classmethod
    def of(cls, path: str, st: os.stat_result, *, symlink: bool = False) -> Info:
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
        symlink = symlink or stat.S_ISLNK(st.st_mode)
        return cls(path, kind(st.st_mode), size, _modified(st), f"{stat.S_IMODE(st.st_mode):04o}", symlink)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.type, "size": self.size, "modified": self.modified,
                "mode": self.mode, "symlink": self.symlink}


@dataclass(frozen=True)
class FileData:
    """A whole file, read."""

    path: str
    data: bytes
    mime_type: str | None

    def text(self) -> str | None:
        """The contents as text when they are UTF-8 without NUL bytes; else None (binary)."""
        if b"\0" in self.data:
            return None
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return None


@dataclass(frozen=True)
class Listing:
    path: str
    entries: list[Info]
    truncated: bool


def _join(base: str, name: str) -> str:
    return name if base == "." else f"{base}/{name}"


def read_bytes(fd: int, max_bytes: int, shown: str) -> bytes:
    """All of an open regular file, refusing one larger than `max_bytes` (also if it grows while read)."""
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"read {shown!r}: is a directory; the list tool shows its entries")
    if not stat.S_ISREG(st.st_mode):
        raise ToolError(f"read {shown!r}: not a regular file ({kind(st.st_mode)})")
    if st.st_size > max_bytes:
        raise ToolError(f"read {shown!r}: the file is {st.st_size} bytes, more than max_read_bytes ({max_bytes})")
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, min(CHUNK_BYTES, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise ToolError(f"read {shown!r}: the file grew past max_read_bytes ({max_bytes}) while being read")
        from_thread.check_cancelled()
    return b"".join(chunks)


def open_file(root: Root, target: Target, flags: int, mode: int = 0o666) -> int:
    """Open the file at a resolved target (not following a final symlink) and return its descriptor."""
    if not target.parts:
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=root.fd)
    dfd = root.open_dir(target.parent)
    try:
        return os.open(target.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
    finally:
        os.close(dfd)


def read(root: Root, path: str, max_bytes: int) -> FileData:
    target = root.resolve(path)
    fd = open_file(root, target, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO must not hang the call
    try:
        data = read_bytes(fd, max_bytes, target.shown)
    finally:
        os.close(fd)
    name = target.parts[-1] if target.parts else ""
    return FileData(target.shown, data, mimetypes.guess_type(name)[0])


@dataclass(frozen=True)
class Written:
    path: str
    size: int
    created: bool


def write(root: Root, path: str, data: bytes, *, create_parents: bool, overwrite: bool) -> Written:
    """Replace the file atomically (a temporary file in the same directory, then rename); keep its mode."""
    target = root.resolve(path)
    if not target.parts:
        raise ToolError(f"write {target.shown!r}: is the workspace root, a directory")
    dfd = root.open_dir(target.parent, create=create_parents)
    try:
        try:
            old: os.stat_result | None = os.stat(target.name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None:
            if stat.S_ISDIR(old.st_mode):
                raise ToolError(f"write {target.shown!r}: is a directory")
            if not stat.S_ISREG(old.st_mode):
                raise ToolError(f"write {target.shown!r}: not a regular file ({kind(old.st_mode)})")
            if not overwrite:
                raise ToolError(f"write {target.shown!r}: already exists, and overwrite is false")
        tmp = f".manifold-{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dfd)
        try:
            try:
                if old is not None:
                    os.fchmod(fd, stat.S_IMODE(old.st_mode))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            if overwrite:
                os.replace(tmp, target.name, src_dir_fd=dfd, dst_dir_fd=dfd)
            else:  # link fails if the name appeared meanwhile: no clobbering, even in a race
                os.link(tmp, target.name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
        finally:
            with contextlib.suppress(FileNotFoundError):  # renamed away: gone already
                os.unlink(tmp, dir_fd=dfd)
    finally:
        os.close(dfd)
    return Written(target.shown, len(data), old is None)


def mkdir(root: Root, path: str) -> tuple[str, bool]:
    """Make a directory and its missing parents; `(path, created)`. An existing directory is fine."""
    target = root.resolve(path)
    try:
        st = root.lstat(target.parts)
    except FileNotFoundError:
        os.close(root.open_dir(target.parts, create=True))
        return target.shown, True
    if not stat.S_ISDIR(st.st_mode):
        raise ToolError(f"mkdir {target.shown!r}: already exists and is not a directory ({kind(st.st_mode)})")
    return target.shown, False


def info(root: Root, path: str) -> Info:
    """Follows a symlink inside the root (and says it was one); refuses one that leads out."""
    literal = root.resolve(path, follow=False)
    is_link = bool(literal.parts) and stat.S_ISLNK(root.lstat(literal.parts).st_mode)
    target = root.resolve(path) if is_link else literal
    return Info.of(target.shown, root.lstat(target.parts), symlink=is_link)


def list_dir(root: Root, path: str, max_entries: int) -> Listing:
    """A directory's entries, sorted by name; symlinks are listed as such, not followed."""
    target = root.resolve(path)
    fd = root.open_dir(target.parts)
    try:
        names = sorted(os.listdir(fd))
        entries: list[Info] = []
        for name in names[:max_entries]:
            from_thread.check_cancelled()
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:  # removed while we listed
                continue
            entries.append(Info.of(_join(target.shown, name), st))
    finally:
        os.close(fd)
    return Listing(target.shown, entries, len(names) > max_entries)


def move(root: Root, source: str, destination: str, *, overwrite: bool, create_parents: bool) -> tuple[str, str, str]:
    """Rename within the root; `(source, destination, type)`. A symlink is moved as the link itself."""
    src = root.resolve(source, follow=False)
    dst = root.resolve(destination, follow=False)
    for t in (src, dst):
        if not t.parts:
            raise ToolError(f"move {t.shown!r}: the workspace root itself cannot be moved or replaced")
    if dst.parts == src.parts:
        raise ToolError(f"move {src.shown!r} -> {dst.shown!r}: source and destination are the same entry")
    if dst.parts[: len(src.parts)] == src.parts:
        raise ToolError(f"move {src.shown!r} -> {dst.shown!r}: cannot move a directory into itself")
    sfd = root.open_dir(src.parent)
    try:
        st = os.stat(src.name, dir_fd=sfd, follow_symlinks=False)
        dfd = root.open_dir(dst.parent, create=create_parents)
        try:
            if not overwrite:
                try:
                    os.stat(dst.name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    pass
                else:
                    raise ToolError(f"move {src.shown!r} -> {dst.shown!r}: the destination exists, "
                                    "and overwrite is false")
            try:
                os.rename(src.name, dst.name, src_dir_fd=sfd, dst_dir_fd=dfd)
            except OSError as exc:
                if exc.errno == errno.EXDEV:
                    raise ToolError(f"move {src.shown!r} -> {dst.shown!r}: the destination is on another file "
                                    "system; moving across file systems is not supported") from None
                raise
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
    return src.shown, dst.shown, kind(st.st_mode)


def delete(root: Root, path: str, *, recursive: bool) -> tuple[str, str]:
    """Delete a file or symlink (the link, not its target); a directory only with `recursive`."""
    target = root.resolve(path, follow=False)
    if not target.parts:
        raise ToolError(f"delete {target.shown!r}: the workspace root itself cannot be deleted")
    fd = root.open_dir(target.parent)
    try:
        st = os.stat(target.name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            if not recursive:
                raise ToolError(f"delete {target.shown!r}: is a directory; pass recursive=true to delete it "
                                "and everything in it")
            shutil.rmtree(target.name, dir_fd=fd)  # the fd-based rmtree: never follows a symlink
        else:
            os.unlink(target.name, dir_fd=fd)
    finally:
        os.close(fd)
    return target.shown, kind(st.st_mode)
