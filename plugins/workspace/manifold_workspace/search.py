"""`search`: find entries by glob below a directory, optionally lines of text inside the files.

Globs: `*` and `?` match within one path component, `[abc]`/`[!abc]` one
character of a set, `**` any number of whole components. A pattern without a
`/` is matched against each entry's name at any depth (`*.py` finds every
Python file); one with a `/` against the path relative to the searched
directory (`src/**/test_*.py`). The walk never follows a symlink (a symlink is
matched by its name, never searched inside), skips entries whose name matches
one of the `exclude` globs, and stops once `max_results` matches are found.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import stat
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from anyio import from_thread

from gateway import ToolError
from manifold_workspace.files import read_bytes
from manifold_workspace.root import DIR_FLAGS, Root, kind

LINE_CHARS = 500
"""Longest line quoted in a text match; longer lines are cut with an ellipsis."""


def _segment(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 2 if glob[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_glob(pattern: str) -> Callable[[str, str], bool]:
    """A matcher `(relative_path, name) -> bool` for a glob (see the module docstring)."""
    pattern = pattern.strip("/")
    if not pattern:
        raise ToolError("search: the pattern is empty; '*' matches everything")
    by_name = "/" not in pattern
    out: list[str] = []
    pieces = pattern.split("/")
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        if piece == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        else:
            out.append(_segment(piece) + ("" if last else "/"))
    try:
        regex = re.compile("".join(out))
    except re.error as exc:
        raise ToolError(f"search: bad pattern {pattern!r}: {exc}") from None
    if by_name:
        return lambda rel, name: regex.fullmatch(name) is not None
    return lambda rel, name: regex.fullmatch(rel) is not None


def line_matcher(contains: str, *, regex: bool, case_sensitive: bool) -> Callable[[str], bool]:
    if regex:
        try:
            compiled = re.compile(contains, 0 if case_sensitive else re.IGNORECASE)
        except re.error as exc:
            raise ToolError(f"search: bad regular expression {contains!r}: {exc}") from None
        return lambda line: compiled.search(line) is not None
    if case_sensitive:
        return lambda line: contains in line
    folded = contains.casefold()
    return lambda line: folded in line.casefold()


@dataclass(frozen=True)
class Match:
    path: str
    type: str
    size: int | None
    line: int | None = None
    text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "type": self.type, "size": self.size}
        if self.line is not None:
            out["line"], out["text"] = self.line, self.text
        return out


@dataclass(frozen=True)
class Found:
    path: str
    matches: list[Match]
    truncated: bool
    skipped: int
    """Files the pattern matched whose text was not searched: binary, or larger than max_read_bytes."""


def _walk(fd: int, rel: str, exclude: list[str]) -> Generator[tuple[int, str, str, os.stat_result]]:
    """`(dir_fd, relative_path, name, lstat)` of every entry below the open directory, depth first, sorted."""
    for name in sorted(os.listdir(fd)):
        from_thread.check_cancelled()
        if any(fnmatch.fnmatchcase(name, glob) for glob in exclude):
            continue
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        child = f"{rel}/{name}" if rel else name
        yield fd, child, name, st
        if stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError:  # unreadable, or swapped for a symlink meanwhile: not ours to enter
                continue
            try:
                yield from _walk(sub, child, exclude)
            finally:
                os.close(sub)


def _lines(fd: int, name: str, max_bytes: int, shown: str) -> list[str] | None:
    try:
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return None
    try:
        data = read_bytes(file_fd, max_bytes, shown)
    except (ToolError, OSError):
        return None
    finally:
        os.close(file_fd)
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None


def find(
    root: Root,
    path: str,
    pattern: str,
    *,
    contains: str | None,
    regex: bool,
    case_sensitive: bool,
    max_results: int,
    max_file_bytes: int,
    exclude: list[str],
) -> Found:
    matches_path = compile_glob(pattern)
    matches_line = None if contains is None else line_matcher(contains, regex=regex, case_sensitive=case_sensitive)
    target = root.resolve(path)
    found: list[Match] = []
    skipped = 0
    top = root.open_dir(target.parts)
    try:
        with contextlib.closing(_walk(top, "", exclude)) as entries:
            for fd, rel, name, st in entries:
                if not matches_path(rel, name):
                    continue
                shown = rel if target.shown == "." else f"{target.shown}/{rel}"
                size = st.st_size if stat.S_ISREG(st.st_mode) else None
                if matches_line is None:
                    if len(found) == max_results:
                        return Found(target.shown, found, True, skipped)
                    found.append(Match(shown, kind(st.st_mode), size))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                lines = _lines(fd, name, max_file_bytes, shown)
                if lines is None:
                    skipped += 1
                    continue
                for number, line in enumerate(lines, 1):
                    if matches_line(line):
                        if len(found) == max_results:
                            return Found(target.shown, found, True, skipped)
                        quoted = line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"
                        found.append(Match(shown, "file", size, number, quoted))
    finally:
        os.close(top)
    return Found(target.shown, found, False, skipped)
