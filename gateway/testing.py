"""Helpers for testing plugins: an in-process gateway, and an MCP client connected to it.

    from gateway.testing import connected

    async def test_greets():
        async with connected({"backends": {"hi": {"type": "greeter"}}}, plugins=[("greeter", plugin)]) as client:
            result = await client.call_tool("hi__greet", {"name": "Ada"})
            assert result.content[0].text == "Hello, Ada."

`config` has the shape of the TOML file (`gateway`, `backends`, `routes`
tables). Installed plugins are loaded as in production; `plugins` adds
`(name, module_or_object)` pairs on top, for a plugin that is not installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

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
