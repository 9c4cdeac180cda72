"""Shared fixtures: free ports, our test MCP server, and a real `manifold serve` process.

Every process a test starts runs in its own process group and is stopped by
that group at teardown; nothing is ever ended by name.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.testing import ServedGateway, free_port, served, stop_group

__all__ = ["free_port", "stop_group"]  # re-exported for the test modules

ROOT = Path(__file__).resolve().parent.parent
ECHO_SERVER = str(ROOT / "tests" / "servers" / "echo_server.py")
NPM = ROOT / ".cache" / "npm" / "node_modules"
BIN = Path(sys.executable).parent


def echo_backend(name: str = "echo", **extra: object) -> dict[str, object]:
    """A `[backends.x]` table running our test server over stdio."""
    return {"command": sys.executable, "args": [ECHO_SERVER, "--name", name], **extra}


def toml_table(name: str, table: dict[str, Any]) -> str:
    """`[backends.<name>]` in TOML, from the table as a dict (strings, numbers, booleans, lists, inline tables)."""

    def value(v: Any) -> str:
        if isinstance(v, str):
            return json.dumps(v)  # a JSON string is a TOML basic string
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return str(v)

    return f"[backends.{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in table.items()) + "\n"


def npm_server(package: str) -> list[str]:
    """`node <entry>` of an npm test server installed by `make test` under .cache/npm."""
    entry = {"server-everything": "dist/index.js", "server-memory": "dist/index.js"}[package]
    path = NPM / "@modelcontextprotocol" / package / entry
    if not path.exists():
        pytest.skip(f"{path} missing: run `make test` (it installs the npm test servers)")
    return ["node", str(path)]


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll until `predicate()` is true; fail after a generous deadline (never a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def serve_gateway(tmp_path: Path) -> Iterator[Callable[..., ServedGateway]]:
    """Start `manifold serve` on a free port with the given TOML; wait for /readyz. Stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(config_toml: str, env: dict[str, str] | None = None, ready: bool = True) -> ServedGateway:
            return stack.enter_context(served(config_toml, tmp_path, env=env, ready=ready))

        yield start
