"""Sampling, elicitation and roots requests a backend makes while serving a call reach the
client that made that call, and the answer goes back, for both client eras; with
`session = "per_client"`, two clients calling the same sampling tool at once each get their
own request. Backend: @modelcontextprotocol/server-everything over stdio, through a real
`manifold serve` over streamable HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from conftest import echo_backend, npm_server, toml_table, wait_until
from mcp import MCPError
from mcp.client.session import ClientRequestContext

from gateway.testing import ServedGateway, served

MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    command, *args = [*npm_server("server-everything"), "stdio"]
    everything = {"command": command, "args": args}
    config = (toml_table("ev", everything) + toml_table("solo", {**everything, "session": "per_client"})
              + toml_table("modern", echo_backend("modern", mode="2026-07-28")))
    with served(config, tmp_path_factory.mktemp("sampling")) as g:
        yield g


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def answer(words: str) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=words),
                                     model="test-llm")


@pytest.mark.parametrize("mode", MODES)
async def test_sampling_reaches_the_calling_client_and_its_answer_the_backend(gw: ServedGateway, mode: str) -> None:
    asked: list[types.CreateMessageRequestParams] = []

    async def sampling(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        asked.append(params)
        return answer("forty-two")

    async with gw.client(mode=mode, sampling_callback=sampling) as client:
        assert client.protocol_version == ("2026-07-28" if mode != "legacy" else "2025-11-25")
        result = await client.call_tool("ev__trigger-sampling-request", {"prompt": "the answer?", "maxTokens": 7})
    assert not result.is_error, text(result)
    assert '"text": "forty-two"' in text(result) and '"model": "test-llm"' in text(result)
    (params,) = asked
    assert params.max_tokens == 7
    assert "the answer?" in params.messages[0].content.text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_elicitation_and_roots_reach_the_calling_client(gw: ServedGateway, mode: str) -> None:
    async def elicitation(context: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
        return types.ElicitResult(action="accept", content={"name": "Ada", "check": True})

    async def roots(context: ClientRequestContext) -> Any:
        return types.ListRootsResult(roots=[types.Root(uri="file:///tmp/project", name="project")])

    async with gw.client(mode=mode, elicitation_callback=elicitation, list_roots_callback=roots) as client:
        elicited = await client.call_tool("ev__trigger-elicitation-request", {})
        listed = await client.call_tool("ev__get-roots-list", {})
    assert not elicited.is_error, text(elicited)
    assert "Name: Ada" in text(elicited)
    assert not listed.is_error, text(listed)
    assert "file:///tmp/project" in text(listed) and "project" in text(listed)


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_without_the_capability_gets_a_prompt_clear_error(gw: ServedGateway, mode: str) -> None:
    async def roots(context: ClientRequestContext) -> Any:  # declares roots only
        return types.ListRootsResult(roots=[])

    async with gw.client(mode=mode, list_roots_callback=roots) as client:
        with anyio.fail_after(30):  # an answer, not a hang
            result = await client.call_tool("ev__trigger-sampling-request", {"prompt": "x"})
    assert result.is_error
    assert "did not declare the sampling capability" in text(result), text(result)


async def test_two_clients_calling_one_sampling_tool_at_once_each_get_their_own_request(gw: ServedGateway) -> None:
    both_asked = anyio.Event()
    asked: dict[str, list[str]] = {"a": [], "b": []}

    def sampler(who: str) -> Any:
        async def sampling(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
            asked[who].append(params.messages[0].content.text)  # type: ignore[union-attr]
            if asked["a"] and asked["b"]:
                both_asked.set()
            with anyio.fail_after(30):  # each request waits until the other client has been asked too
                await both_asked.wait()
            return answer(f"answer for {who}")

        return sampling

    results: dict[str, types.CallToolResult] = {}

    async def call(who: str) -> None:
        async with gw.client(mode="legacy", sampling_callback=sampler(who)) as client:
            results[who] = await client.call_tool("solo__trigger-sampling-request", {"prompt": f"from {who}"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "a")
        tg.start_soon(call, "b")
    for who in ("a", "b"):
        assert not results[who].is_error, text(results[who])
        assert f"answer for {who}" in text(results[who])
        (prompt,) = asked[who]
        assert prompt.endswith(f"from {who}")
    assert "answer for b" not in text(results["a"]) and "answer for a" not in text(results["b"])
    # Each client session had a backend connection (a server-everything process) of its own.
    opened = gw.log.read_text().count("backend solo: opened a connection for client session http:")
    assert opened >= 2, gw.log.read_text()[-3000:]


async def test_on_a_shared_connection_a_request_that_cannot_be_told_apart_is_refused_clearly(
    gw: ServedGateway,
) -> None:
    a_asked, b_done = anyio.Event(), anyio.Event()

    async def sampling_a(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        a_asked.set()
        with anyio.fail_after(30):  # a's call stays in flight while b calls
            await b_done.wait()
        return answer("for a")

    async def sampling_b(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        return answer("for b")

    results: dict[str, types.CallToolResult] = {}

    async def call_a() -> None:
        async with gw.client(mode="legacy", sampling_callback=sampling_a) as client:
            results["a"] = await client.call_tool("ev__trigger-sampling-request", {"prompt": "a"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(call_a)
        with anyio.fail_after(30):
            await a_asked.wait()
        async with gw.client(mode="legacy", sampling_callback=sampling_b) as client:
            results["b"] = await client.call_tool("ev__trigger-sampling-request", {"prompt": "b"})
        b_done.set()
    assert not results["a"].is_error and "for a" in text(results["a"])
    assert results["b"].is_error
    assert 'calls of several clients are in flight on its shared connection; set session = "per_client"' in text(
        results["b"])


@pytest.mark.parametrize("mode", MODES)
async def test_a_2026_backends_input_required_round_reaches_either_eras_client(gw: ServedGateway, mode: str) -> None:
    asked: list[str] = []

    async def elicitation(context: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Grace"})

    async with gw.client(mode=mode, elicitation_callback=elicitation) as client:
        result = await client.call_tool("modern__ask", {})
    assert not result.is_error, text(result)
    assert text(result) == "hello Grace (state asked-once)"  # the backend got the answer and its own state back
    assert asked == ["Who are you?"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_2026_backends_round_without_the_capability_is_a_clear_error(gw: ServedGateway, mode: str) -> None:
    async with gw.client(mode=mode) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("modern__ask", {})
    assert result.is_error
    assert "did not declare the elicitation capability" in text(result), text(result)


async def test_an_unknown_request_state_is_refused(gw: ServedGateway) -> None:
    async with gw.client(mode="2026-07-28") as client:
        with pytest.raises(MCPError, match="unknown or expired request_state"):
            await client.call_tool("ev__trigger-sampling-request", {"prompt": "x"}, request_state="forged")


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_that_can_be_asked_still_cancels_its_call_at_the_backend(
    gw: ServedGateway, mode: str, tmp_path: Path
) -> None:
    """Calls of a 2026-07-28 client that declared sampling run in the background (they may be parked):
    cancelling the request still cancels the backend's handler."""
    marker, started = tmp_path / "cancelled", tmp_path / "started"

    async def sampling(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        return answer("unused")

    async with gw.client(mode=mode, sampling_callback=sampling) as client, anyio.create_task_group() as tg:
        async def slow() -> None:
            await client.call_tool("modern__slow", {"seconds": 60, "marker": str(marker), "started": str(started)})

        tg.start_soon(slow)
        await anyio.to_thread.run_sync(wait_until, started.exists, 30, "the call to start")
        tg.cancel_scope.cancel()
    await anyio.to_thread.run_sync(wait_until, lambda: marker.exists() and marker.read_text() == "cancelled", 30,
                                   "the backend's handler to be cancelled")
