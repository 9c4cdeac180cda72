"""The circuit breaker, through a running gateway: five calls that get no answer open it,
calls are then refused at once without reaching the backend, and after the cooldown one
probe call closes it again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import mcp_types as types
from conftest import echo_backend, toml_table
from mcp import Client

from gateway.health import BREAKER_COOLDOWN_S, FAILURES_TO_OPEN
from gateway.testing import ServedGateway


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_breaker_opens_refuses_at_once_and_a_probe_closes_it(
    serve_gateway: Callable[..., ServedGateway], tmp_path: Path
) -> None:
    echo = toml_table("echo", echo_backend("echo", call_timeout_s=0.3))
    gw = serve_gateway(echo + toml_table("other", echo_backend("other")))
    async with Client(gw.url) as client:
        for n in range(FAILURES_TO_OPEN):
            result = await client.call_tool("echo__slow", {"seconds": 30, "marker": str(tmp_path / f"m{n}")})
            assert result.is_error and "timed out" in text(result), text(result)
        state = gw.backend("echo")
        assert state["state"] == "degraded"
        assert state["reason"] == f"circuit open after {FAILURES_TO_OPEN} failed calls"

        started = tmp_path / "reached"
        refused = await client.call_tool("echo__slow", {"seconds": 0, "started": str(started)})
        assert refused.is_error
        assert "circuit open" in text(refused) and "cannot be served" in text(refused), text(refused)
        assert not started.exists()  # refused in the gateway, never sent
        assert text(await client.call_tool("other__echo", {"message": "still"})) == "still"

        # After the cooldown, one call goes through as the probe; its answer closes the breaker.
        deadline = anyio.current_time() + BREAKER_COOLDOWN_S * 6
        while (result := await client.call_tool("echo__echo", {"message": "probe"})).is_error:
            assert "circuit open" in text(result), text(result)
            assert anyio.current_time() < deadline, "no probe got through"
            await anyio.sleep(0.25)
        assert text(result) == "probe"
        state = gw.backend("echo")
        assert (state["state"], state["reason"]) == ("healthy", "ok")
