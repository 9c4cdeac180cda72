"""Tests of the example backend type: copy this file with the plugin and rename it (tests/test_mything.py).

Two ways to test a plugin, both with `gateway.testing`:

* `connected(config, plugins=[...], entry_points=False)`: a gateway in this process, with an
  MCP client talking to it in memory. Fast; only this plugin is loaded, not the installed ones.
* `served(config_toml, workdir)`: a real `manifold serve` process on a free port,
  with an MCP client over streamable HTTP. The plugin must be pip-installed,
  since the process finds it through its entry point, as in production.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import entry_points
from pathlib import Path

import mcp_types as types
import pytest
from manifold_example import plugin

from gateway.testing import connected, served

TYPE_NAME = "example"
CONFIG = {"backends": {"ex": {"type": TYPE_NAME, "greeting": "Howdy"}}}
CONFIG_TOML = f'[backends.ex]\ntype = "{TYPE_NAME}"\ngreeting = "Howdy"\n'


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def test_tools_are_listed_under_the_backend_namespace() -> None:
    # entry_points=False: only this plugin, so the test runs the same whether it is installed or not.
    async with connected(CONFIG, plugins=[(TYPE_NAME, plugin)], entry_points=False) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert {"ex__greet", "ex__digest"} <= names


async def test_greet_and_digest_in_process() -> None:
    async with connected(CONFIG, plugins=[(TYPE_NAME, plugin)], entry_points=False) as client:
        greeting = await client.call_tool("ex__greet", {"name": "Ada"})
        assert not greeting.is_error
        assert text(greeting) == "Howdy, Ada!"  # the `greeting` key of the config table

        digest = await client.call_tool("ex__digest", {"text": "abc", "algorithm": "md5"})
        assert not digest.is_error
        assert digest.structured_content == {"algorithm": "md5", "hex": hashlib.md5(b"abc").hexdigest()}


async def test_a_tool_error_is_an_error_result() -> None:
    async with connected(CONFIG, plugins=[(TYPE_NAME, plugin)], entry_points=False) as client:
        result = await client.call_tool("ex__greet", {"name": "  "})
    assert result.is_error
    assert "name must not be empty" in text(result)


def installed() -> bool:
    return any(ep.value == plugin.__name__ for ep in entry_points(group="manifold"))


@pytest.mark.skipif(not installed(), reason="pip install -e this plugin first: `manifold serve` needs its entry point")
async def test_greet_and_digest_through_manifold_serve(tmp_path: Path) -> None:
    with served(CONFIG_TOML, tmp_path) as gw:
        assert gw.backend("ex")["state"] == "healthy"  # its /status entry
        async with gw.client() as client:
            greeting = await client.call_tool("ex__greet", {"name": "Grace"})
            assert text(greeting) == "Howdy, Grace!"

            digest = await client.call_tool("ex__digest", {"text": "abc"})
            assert digest.structured_content == {"algorithm": "sha256", "hex": hashlib.sha256(b"abc").hexdigest()}
