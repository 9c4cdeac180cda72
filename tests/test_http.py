"""The HTTP endpoint's contract, through a real `manifold serve`: sessions (stateful by default,
MANIFOLD_STATELESS=true for none), the request body cap, and Host/Origin checks against DNS
rebinding."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from conftest import echo_backend, toml_table
from mcp import Client

from gateway.testing import ServedGateway

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}


def config() -> str:
    return toml_table("echo", echo_backend("echo"))


def post(gw: ServedGateway, body: Any, **headers: str) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(gw.url, content=content, headers={**HEADERS, **headers}, timeout=30)


@pytest.mark.parametrize("stateless", [False, True])
async def test_sessions_are_stateful_by_default_and_off_when_stateless(
    serve_gateway: Callable[..., ServedGateway], stateless: bool
) -> None:
    gw = serve_gateway(config(), env={"MANIFOLD_STATELESS": "true"} if stateless else {})
    reply = post(gw, INITIALIZE)
    assert reply.status_code == 200, reply.text
    assert ("mcp-session-id" in reply.headers) is not stateless
    async with Client(gw.url, mode="legacy") as client:  # a client works either way
        result = await client.call_tool("echo__echo", {"message": "hi"})
    assert result.content[0].text == "hi"  # type: ignore[union-attr]


async def test_a_body_over_the_cap_is_refused_and_the_gateway_serves_on(
    serve_gateway: Callable[..., ServedGateway],
) -> None:
    gw = serve_gateway(config(), env={"MANIFOLD_MAX_BODY_BYTES": "4096"})
    big = {**INITIALIZE, "params": {**INITIALIZE["params"], "padding": "x" * 10_000}}  # type: ignore[dict-item]
    assert post(gw, big).status_code == 413
    assert post(gw, INITIALIZE).status_code == 200
    async with Client(gw.url, mode="legacy") as client:
        assert (await client.call_tool("echo__echo", {"message": "small"})).content[0].text == "small"  # type: ignore[union-attr]


async def test_dns_rebinding_host_and_origin_are_refused(serve_gateway: Callable[..., ServedGateway]) -> None:
    gw = serve_gateway(config())
    assert post(gw, INITIALIZE, Host=f"evil.example:{gw.port}").status_code == 421
    assert post(gw, INITIALIZE, Origin="http://evil.example").status_code == 403
    assert post(gw, INITIALIZE, Origin=f"http://127.0.0.1:{gw.port}").status_code == 200
