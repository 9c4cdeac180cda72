"""The `stdio` backend type: an MCP server as a child process, spoken to over its stdin/stdout.

The child gets only the variables its `env` names, plus PATH, HOME and the four
the SDK adds (LOGNAME, USER, SHELL, TERM). Its stderr goes to the gateway log,
one line at a time, tagged with the backend name. It runs in a process group of
its own, so the child and everything it started (`npx`, `uvx` wrappers) are
stopped together when the backend closes. The SDK signals that group only when
the child outlives its grace period; a child that died first (kill -9, crash)
would leave its descendants running, so the group is always killed at close.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from mcp.client.stdio import StdioServerParameters, stdio_client
from pydantic import Field, SecretStr

from gateway import McpBackend, McpBackendConfig, hookimpl


class StdioConfig(McpBackendConfig):
    command: str = Field(description="the program to run, found on PATH")
    args: list[str] = Field(default_factory=list, description="its arguments")
    env: dict[str, SecretStr] = Field(default_factory=dict, description="the only variables it gets, plus PATH/HOME")
    cwd: str | None = Field(default=None, description="its working directory")


class StdioBackend(McpBackend):
    type_name = "stdio"
    Config = StdioConfig
    config: StdioConfig

    @contextlib.asynccontextmanager
    async def transport(self) -> AsyncIterator[Any]:
        params = StdioServerParameters(
            command=self.config.command,
            args=self.config.args,
            env={k: v.get_secret_value() for k, v in self.config.env.items()},
            cwd=self.config.cwd,
        )
        stderr = _tagged_stderr(self.name)
        group: int | None = None
        try:
            async with stdio_client(params, errlog=stderr.writer) as streams:
                group = stderr.child_group()
                stderr.started()
                yield streams
        finally:
            stderr.started()
            if group is not None:  # whatever the child left behind in its group goes with it
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, signal.SIGKILL)

    def describe_failure(self, exc: BaseException) -> str:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        if isinstance(exc, FileNotFoundError):
            return f"command not found: {self.config.command!r} (install it, or fix backends.{self.name}.command)"
        return super().describe_failure(exc)


class _TaggedStderr:
    """A pipe whose far end is the child's stderr; a thread logs what arrives, line by line."""

    def __init__(self, writer: Any, close_writer: Callable[[], None]) -> None:
        self.writer = writer
        self._close_writer = close_writer

    def started(self) -> None:
        """The child has its copy of the pipe; drop ours so the reader sees EOF when it exits."""
        self._close_writer()

    def child_group(self) -> int | None:
        """The process group of our child: the one whose stderr is this pipe (Linux /proc; else None).

        The SDK starts the child as a session leader, so its pid is its group's id.
        """
        target = f"pipe:[{os.fstat(self.writer.fileno()).st_ino}]"
        for children in Path("/proc/self/task").glob("*/children"):
            for pid in children.read_text().split():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/2") == target:
                        return int(pid)
        return None


def _tagged_stderr(name: str) -> _TaggedStderr:
    read_fd, write_fd = os.pipe()
    writer = os.fdopen(write_fd, "w")
    logger = logging.getLogger(f"manifold.stdio.{name}")

    def pump() -> None:
        with os.fdopen(read_fd, "r", errors="replace") as reader:
            for line in reader:
                logger.info("[%s] %s", name, line.rstrip())

    threading.Thread(target=pump, name=f"stderr-{name}", daemon=True).start()
    closed = False

    def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            writer.close()

    return _TaggedStderr(writer, close)


@hookimpl
def register_backend_types(register: Callable[[type[StdioBackend]], None]) -> None:
    register(StdioBackend)
