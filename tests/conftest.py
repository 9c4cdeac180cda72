"""Shared fixtures: free ports, our test MCP server, and a real `manifold serve` process.

Every process a test starts runs in its own process group and is stopped by
that group at teardown; nothing is ever ended by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

ROOT = Path(__file__).resolve().parent.parent
ECHO_SERVER = str(ROOT / "tests" / "servers" / "echo_server.py")
NPM = ROOT / ".cache" / "npm" / "node_modules"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo_backend(name: str = "echo", **extra: object) -> dict[str, object]:
    """A `[backends.x]` table running our test server over stdio."""
    return {"command": sys.executable, "args": [ECHO_SERVER, "--name", name], **extra}


def npm_server(package: str) -> list[str]:
    """`node <entry>` of an npm test server installed by `make test` under .cache/npm."""
    entry = {"server-everything": "dist/index.js", "server-memory": "dist/index.js"}[package]
    path = NPM / "@modelcontextprotocol" / package / entry
    if not path.exists():
        pytest.skip(f"{path} missing: run `make test` (it installs the npm test servers)")
    return ["node", str(path)]


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started with start_new_session=True, and everything it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    else:
        with contextlib.suppress(ProcessLookupError):  # the leader is gone; its group may not be
            os.killpg(proc.pid, signal.SIGKILL)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll until `predicate()` is true; fail after a generous deadline (never a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class RunningGateway:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/mcp"

    def status(self) -> dict[str, object]:
        return httpx2.get(f"{self.base}/status", timeout=10).json()  # type: ignore[no-any-return]

    def backend(self, name: str) -> dict[str, object]:
        return next(b for b in self.status()["backends"] if b["name"] == name)  # type: ignore[union-attr,index]


@pytest.fixture
def serve_gateway(tmp_path: Path) -> Iterator[Callable[..., RunningGateway]]:
    """Start `manifold serve` on a free port with the given TOML; wait for /readyz."""
    started: list[subprocess.Popen[bytes]] = []

    def start(config_toml: str, env: dict[str, str] | None = None, ready: bool = True) -> RunningGateway:
        port = free_port()
        config = tmp_path / f"manifold-{port}.toml"
        config.write_text(config_toml)
        log = tmp_path / f"gateway-{port}.log"
        env_file = tmp_path / "empty.env"
        env_file.touch()
        full_env = {**os.environ, "MANIFOLD_PORT": str(port), "MANIFOLD_CONFIG": str(config), **(env or {})}
        with log.open("wb") as log_file:  # the child keeps its own copy
            proc = subprocess.Popen(
                [str(BIN / "manifold"), "serve", "--env-file", str(env_file)], env=full_env, cwd=tmp_path,
                stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True,
            )
        started.append(proc)
        gw = RunningGateway(proc, port, log)

        def is_ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"gateway exited {proc.returncode}:\n{log.read_text()}")
            try:
                r = httpx2.get(f"{gw.base}/readyz", timeout=2)
                return r.status_code == 200 or (not ready and r.status_code == 503)
            except httpx2.HTTPError:
                return False

        wait_until(is_ready, 60, "the gateway to be ready")
        return gw

    yield start
    for proc in started:
        stop_group(proc)
