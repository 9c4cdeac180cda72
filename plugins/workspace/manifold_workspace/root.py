"""The workspace root: where every path a tool names is checked, and opened.

A path must be relative and free of `..`. It is resolved with `realpath`:
symlinks are followed, and a path whose resolved form lies outside the root
(a symlink inside the root pointing out, or a symlinked directory that does)
is refused. The resolved path is then opened one component at a time from a
descriptor of the root, each with `O_NOFOLLOW`, so that a component swapped
for a symlink between the check and the use makes the call fail (`ELOOP`)
instead of leaving the root. Every function here blocks; callers run them in a
worker thread.

POSIX only: it relies on `dir_fd`, `O_DIRECTORY` and `O_NOFOLLOW`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gateway import ToolError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PathRefused(ToolError):
    """A path that names something outside the root, or is not a root-relative path at all."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path!r} is refused: {reason}")


@dataclass(frozen=True)
class Target:
    """A checked path: as the caller wrote it (normalised) and as it resolved, in components."""

    shown: str
    """The caller's path, normalised (`./a//b/` is `a/b`; the root is `.`); used in results and errors."""
    parts: tuple[str, ...]
    """The resolved path's components below the root; `()` is the root itself."""

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def parent(self) -> tuple[str, ...]:
        return self.parts[:-1]


def _components(path: str) -> tuple[str, ...]:
    if "\0" in path:
        raise PathRefused(path, "it contains a NUL character")
    pure = PurePosixPath(path)
    if pure.is_absolute():
        raise PathRefused(path, "absolute paths are not allowed; give a path relative to the workspace root")
    if ".." in pure.parts:
        raise PathRefused(path, "'..' is not allowed; paths stay inside the workspace root")
    return pure.parts  # PurePosixPath drops "." and empty components: "" and "." are ()


class Root:
    """The root directory, held open by a descriptor for the backend's life (or one call's: `dup`)."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open(cls, configured: Path, *, create: bool) -> Root:
        """Open the configured root (relative: to the working directory), creating it if `create`."""
        path = os.path.realpath(configured.expanduser())
        if create and not os.path.lexists(path):
            os.makedirs(path, exist_ok=True)
        try:
            fd = os.open(path, DIR_FLAGS & ~os.O_NOFOLLOW)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"workspace root {path} does not exist (a read-only backend never creates it)"
            ) from None
        except NotADirectoryError:
            raise NotADirectoryError(f"workspace root {path} is not a directory") from None
        return cls(path, fd)

    def dup(self) -> Root:
        """A second handle on the same directory, for one call; closing either leaves the other open."""
        return Root(self.path, os.dup(self.fd))

    def close(self) -> None:
        os.close(self.fd)

    def check(self) -> None:
        """Raise when the root's path no longer names the directory held open (removed or replaced)."""
        held = os.fstat(self.fd)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            raise RuntimeError(f"workspace root {self.path} was removed") from None
        if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            raise RuntimeError(f"workspace root {self.path} was removed or replaced")

    # -- checking ----------------------------------------------------------------

    def _inside(self, real: str) -> tuple[str, ...] | None:
        if real == self.path:
            return ()
        prefix = self.path.rstrip(os.sep) + os.sep
        if not real.startswith(prefix):
            return None
        return tuple(real[len(prefix) :].split(os.sep))

    def resolve(self, path: str, *, follow: bool = True) -> Target:
        """Check `path`; with `follow=False` its last component is taken as it is (a symlink stays one)."""
        parts = _components(path)
        shown = "/".join(parts) or "."
        if follow or not parts:
            real = self._inside(os.path.realpath(os.path.join(self.path, *parts)))
            if real is None:
                raise PathRefused(path, "it leads outside the workspace root through a symlink")
            return Target(shown, real)
        parent = self._inside(os.path.realpath(os.path.join(self.path, *parts[:-1])))
        if parent is None:
            raise PathRefused(path, "it leads outside the workspace root through a symlink")
        return Target(shown, (*parent, parts[-1]))

    # -- opening -----------------------------------------------------------------

    def open_dir(self, parts: tuple[str, ...], *, create: bool = False) -> int:
        """A descriptor of the directory at `parts`, walked with O_NOFOLLOW; `create` makes missing ones."""
        fd = os.open(".", DIR_FLAGS, dir_fd=self.fd)
        try:
            for part in parts:
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, dir_fd=fd)
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def lstat(self, parts: tuple[str, ...]) -> os.stat_result:
        """The entry at `parts` itself (a symlink is not followed)."""
        if not parts:
            return os.fstat(self.fd)
        fd = self.open_dir(parts[:-1])
        try:
            return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)


def kind(mode: int) -> str:
    """`file`, `directory`, `symlink` or `other` (a FIFO, socket or device)."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"
