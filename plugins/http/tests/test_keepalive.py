"""Calls to an http backend reuse the gateway's connections to it: after 60 calls through a real
`manifold serve`, the sockets to the backend (open or in TIME-WAIT) are a handful, not one per call."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from gateway.testing import free_port, listening, served

ECHO_SERVER = Path(__file__).resolve().parents[3] / "tests" / "servers" / "echo_server.py"
CALLS = 60


def sockets_to(port: int) -> int:
    """TCP sockets on this machine whose remote end is 127.0.0.1:port, in any state (TIME-WAIT too)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        remote = line.split()[2]
        address, remote_port = remote.split(":")
        if address == "0100007F" and int(remote_port, 16) == port:
            count += 1
    return count


@pytest.fixture
def echo_port() -> Iterator[int]:
    port = free_port()
    with listening([sys.executable, str(ECHO_SERVER), "--http", str(port)], port):
        yield port


async def test_calls_reuse_connections_to_the_backend(echo_port: int, tmp_path: Path) -> None:
    with served(f'[backends.web]\nurl = "http://127.0.0.1:{echo_port}/mcp"\n', tmp_path) as gw:
        async with Client(gw.url) as client:
            for n in range(CALLS):
                result = await client.call_tool("web__echo", {"message": f"m{n}"})
                assert result.content[0].text == f"m{n}"  # type: ignore[union-attr]
            assert sockets_to(echo_port) < 10, f"{sockets_to(echo_port)} sockets for {CALLS} calls"
