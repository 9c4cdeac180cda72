"""Fixtures: the recorder (in a thread of this process) and the demo notes API (a subprocess).

Every process a test starts runs in its own process group and is stopped by that group.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from openapi_servers import Recorder, recorder_app

from gateway.testing import free_port, listening


@pytest.fixture(scope="session")
def recorder_server() -> Iterator[Recorder]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    recorder = Recorder(url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    server = uvicorn.Server(uvicorn.Config(recorder_app(recorder), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def recorder(recorder_server: Recorder) -> Recorder:
    recorder_server.received.clear()
    return recorder_server


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running demo notes API."""
    port = free_port()
    with listening([sys.executable, "-m", "manifold_openapi.demo", "--port", str(port), "--host", "127.0.0.1"],
                   port, log=tmp_path_factory.mktemp("demo") / "demo.log"):
        yield f"http://127.0.0.1:{port}"
