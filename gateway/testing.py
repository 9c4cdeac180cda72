"""Helpers for testing plugins: an in-process gateway, and an MCP client connected to it.

    from gateway.testing import connected

    async def test_greets():
        async with connected({"backends": {"hi": {"type": "greeter"}}}, plugins=[("greeter", plugin)]) as client:
            result = await client.call_tool("hi__greet", {"name": "Ada"})
            assert result.content[0].text == "Hello, Ada."

`config` has the shape of the TOML file (`gateway`, `backends`, `routes`
tables). Installed plugins are loaded as in production; `plugins` adds
`(name, module_or_object)` pairs on top, for a plugin that is not installed.

`served(config_toml, workdir)` runs a real `manifold serve` process instead (the
plugin must then be installed), for tests through the HTTP endpoint:

    def test_through_http(tmp_path):
        with served('[backends.hi]\ntype = "greeter"\n', tmp_path) as gw:
            assert gw.backend("hi")["state"] == "healthy"
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client

from gateway import plugins as plugin_loader
from gateway import settings
from gateway.app import Gateway


@contextlib.asynccontextmanager
async def running_gateway(
    config: Mapping[str, Any], *, plugins: Sequence[tuple[str, object]] = (), entry_points: bool = True
) -> AsyncIterator[Gateway]:
    """A started gateway (every backend has had its first start attempt), stopped on exit."""
    registry = plugin_loader.load(plugins, entry_points=entry_points)
    cfg = settings.from_tables(dict(config), source="(test config)", backend_types=registry.backend_types,
                               variables={})
    gateway = Gateway(cfg, registry)
    async with gateway.run():
        await gateway.started()
        yield gateway


@contextlib.asynccontextmanager
async def connected(
    config: Mapping[str, Any],
    *,
    plugins: Sequence[tuple[str, object]] = (),
    entry_points: bool = True,
    **client_options: Any,
) -> AsyncIterator[Client]:
    """An `mcp.Client` talking in-process to a started gateway. `client_options` go to `Client`."""
    async with (
        running_gateway(config, plugins=plugins, entry_points=entry_points) as gateway,
        Client(gateway.mcp.server, **client_options) as client,
    ):
        yield client


class ServedGateway:
    """A `manifold serve` process started by `served`: its URLs, log and `/status`."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/mcp"

    def status(self) -> dict[str, Any]:
        return dict(httpx2.get(f"{self.base}/status", timeout=10).json())

    def backend(self, name: str) -> dict[str, Any]:
        """The `/status` entry of one backend."""
        return next(b for b in self.status()["backends"] if b["name"] == name)

    def client(self, **client_options: Any) -> Client:
        """An `mcp.Client` for this gateway over streamable HTTP (use it with `async with`)."""
        return Client(self.url, **client_options)


@contextlib.contextmanager
def served(
    config_toml: str, workdir: Path, *, env: Mapping[str, str] | None = None, env_file: str = "",
    inherit_env: bool = True, ready: bool = True, timeout_s: float = 60.0,
) -> Iterator[ServedGateway]:
    """Run `manifold serve` with this TOML on a free loopback port, in `workdir`, until exit.

    `env` is added to this process's environment (to nothing but it with
    `inherit_env=False`); `env_file` is the text of the `--env-file` it reads.
    Waits for `/readyz` to answer 200 (or also 503 with `ready=False`). The process
    runs in its own process group, and the whole group is stopped on exit.
    """
    port = free_port()
    config = workdir / f"manifold-{port}.toml"
    config.write_text(config_toml)
    log = workdir / f"gateway-{port}.log"
    env_path = workdir / f"gateway-{port}.env"
    env_path.write_text(env_file)
    base = os.environ if inherit_env else {}
    full_env = {**base, "MANIFOLD_PORT": str(port), "MANIFOLD_CONFIG": str(config), **(env or {})}
    with log.open("wb") as log_file:  # the child keeps its own copy
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "manifold"), "serve", "--env-file", str(env_path)],
            env=full_env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True,
        )
    gateway = ServedGateway(proc, port, log)
    try:
        deadline = time.monotonic() + timeout_s
        while not _answers_ready(gateway, ready):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gateway was not ready after {timeout_s:g} s:\n{log.read_text()}")
            time.sleep(0.05)
        yield gateway
    finally:
        stop_group(proc)


def _answers_ready(gateway: ServedGateway, ready: bool) -> bool:
    if gateway.proc.poll() is not None:
        raise RuntimeError(f"the gateway exited {gateway.proc.returncode}:\n{gateway.log.read_text()}")
    try:
        code = httpx2.get(f"{gateway.base}/readyz", timeout=2).status_code
    except httpx2.HTTPError:
        return False
    return code == 200 or (not ready and code == 503)


@contextlib.contextmanager
def listening(
    command: Sequence[str], port: int, *, log: Path | None = None, timeout_s: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server (a backend, an API) in its own process group until it accepts on 127.0.0.1:`port`.

    Its stderr goes to `log` when given (and is quoted if it exits early); the
    whole group is stopped on exit.
    """
    with contextlib.ExitStack() as files:
        stderr = files.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        proc = subprocess.Popen(list(command), stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while not port_open(port):
            if proc.poll() is not None:
                said = log.read_text() if log is not None else ""
                raise RuntimeError(f"{command[0]} exited {proc.returncode} before listening:\n{said}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{' '.join(command)} did not listen on port {port} within {timeout_s:g} s")
            time.sleep(0.05)
        yield proc
    finally:
        stop_group(proc)


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started with `start_new_session=True`, and everything it started."""
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
