"""Everything MCP carries passes through the gateway, for both client eras: resources and templates
(list, read, subscribe), prompts, completions, progress, logging, `list_changed` and the advertised
capabilities. Backends: @modelcontextprotocol/server-everything and our echo server over stdio, behind
a real `manifold serve` reached over streamable HTTP; results are compared with the backend's own,
read straight from a server-everything of our own."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.abc import TaskStatus
from conftest import ECHO_SERVER, npm_server
from mcp import Client, MCPError
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import ResourceUpdated, ToolsListChanged

from gateway.testing import ServedGateway, served

MODES = ["legacy", "2026-07-28"]
PROTOCOL = {"legacy": "2025-11-25", "2026-07-28": "2026-07-28"}
GROWER = {"legacy": "grow1", "2026-07-28": "grow2"}  # echo servers whose tool list grows, one per era
DOC = "demo://resource/static/document/"
TEXT_TEMPLATE = "demo://resource/dynamic/text/{resourceId}"
BLOB_TEMPLATE = "demo://resource/dynamic/blob/{resourceId}"
STAMP = re.compile(r"created at .*$")  # server-everything's dynamic resources carry the time they were made


def table(name: str, command: str, args: list[str]) -> str:
    return f"[backends.{name}]\ncommand = {json.dumps(command)}\nargs = {json.dumps(args)}\n\n"


def everything() -> StdioServerParameters:
    command = npm_server("server-everything")
    return StdioServerParameters(command=command[0], args=[*command[1:], "stdio"])


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    ev = everything()
    config = table("ev", ev.command, ev.args) + "".join(
        table(name, sys.executable, [ECHO_SERVER, "--name", name]) for name in ("echo", *GROWER.values()))
    with served(config, tmp_path_factory.mktemp("relay")) as gateway:
        yield gateway


@contextlib.asynccontextmanager
async def direct() -> AsyncIterator[Client]:
    """A server-everything of our own, to compare with what comes through the gateway."""
    async with Client(everything(), mode="legacy", cache=None, read_timeout_seconds=30) as client:
        yield client


@contextlib.contextmanager
def handshake_api() -> Iterator[None]:
    """Client methods the SDK marks as removed at 2026-07-28 (they still serve handshake-era sessions)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        yield


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def unstamped(content: types.TextResourceContents | types.BlobResourceContents) -> dict[str, Any]:
    """A dynamic resource's contents with its creation time (and only that) blanked out."""
    dumped = content.model_dump()
    if isinstance(content, types.BlobResourceContents):
        dumped["blob"] = STAMP.sub("created at T", base64.b64decode(content.blob).decode())
    else:
        dumped["text"] = STAMP.sub("created at T", content.text)
    return dumped


async def every_resource(client: Client) -> list[types.Resource]:
    resources: list[types.Resource] = []
    cursor: str | None = None
    while True:
        page = await client.list_resources(cursor=cursor)
        resources += page.resources
        if (cursor := page.next_cursor) is None:
            return resources


# -- 1. resources and templates ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_resources_and_templates_are_listed_and_read_as_the_backend_serves_them(
    gw: ServedGateway, mode: str
) -> None:
    async with direct() as backend, gw.client(mode=mode) as client:
        assert client.protocol_version == PROTOCOL[mode]
        own = await every_resource(backend)
        seen = await every_resource(client)
        assert own and all(str(r.uri).startswith(DOC) for r in own)
        assert [r for r in seen if str(r.uri).startswith("demo://")] == own
        # The echo servers share `test://shared`: rewritten per backend; a URI only one has is kept.
        uris = {str(r.uri) for r in seen}
        assert {"echo+test://shared", "grow1+test://shared", "test://echo/own"} <= uris
        assert "test://shared" not in uris

        templates = (await client.list_resource_templates()).resource_templates
        assert templates == (await backend.list_resource_templates()).resource_templates
        assert {t.uri_template for t in templates} == {TEXT_TEMPLATE, BLOB_TEMPLATE}

        doc = str(own[0].uri)
        assert (await client.read_resource(doc)).contents == (await backend.read_resource(doc)).contents

        for uri in ("demo://resource/dynamic/text/3", "demo://resource/dynamic/blob/4"):  # through a template
            (got,) = (await client.read_resource(uri)).contents
            (want,) = (await backend.read_resource(uri)).contents
            assert type(got) is type(want)
            assert unstamped(got) == unstamped(want)
        assert isinstance(got, types.BlobResourceContents)
        assert base64.b64decode(got.blob).decode().startswith("Resource 4: This is a base64 blob created at ")

        (shared,) = (await client.read_resource("echo+test://shared")).contents
        assert isinstance(shared, types.TextResourceContents)
        assert (str(shared.uri), shared.text) == ("echo+test://shared", "echo:test://shared")

        with pytest.raises(MCPError) as unknown:
            await client.read_resource("demo://nowhere/at-all")
        assert "demo://nowhere/at-all" in unknown.value.error.message


# -- 2. subscriptions ----------------------------------------------------------------------------


async def toggle_updates(client: Client, want: str) -> None:
    """Turn server-everything's simulated resource updates on ("Started") or off ("Stopped")."""
    result = await client.call_tool("ev__toggle-subscriber-updates", {})
    assert text(result).startswith(want), text(result)


class Updates:
    """The resource updates one client received, in order (as a handshake-era `message_handler`, or fed events)."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._more = anyio.Event()

    def record(self, uri: str) -> None:
        self.uris.append(uri)
        self._more.set()
        self._more = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.record(str(message.params.uri))

    async def until(self, count: int) -> None:
        """Wait until `count` updates have arrived in all (the caller bounds the wait)."""
        while len(self.uris) < count:
            await self._more.wait()


async def test_resource_updates_reach_only_the_subscribing_handshake_era_clients(gw: ServedGateway) -> None:
    watched, other = DOC + "architecture.md", DOC + "features.md"
    a, b, c = Updates(), Updates(), Updates()
    async with (
        gw.client(mode="legacy", message_handler=a) as client_a,
        gw.client(mode="legacy", message_handler=b) as client_b,
        gw.client(mode="legacy", message_handler=c),  # connected, subscribed to nothing
    ):
        with handshake_api():
            await client_a.subscribe_resource(watched)
            await client_b.subscribe_resource(other)
        await toggle_updates(client_a, "Started")  # an update at once for each subscribed URI, then every 5 s
        try:
            with anyio.fail_after(30):
                await a.until(2)  # a's second update comes a whole period after the first
                await b.until(1)
            assert set(a.uris) == {watched}
            assert set(b.uris) == {other}
            assert c.uris == []

            with handshake_api():
                await client_a.unsubscribe_resource(watched)
            seen_by_a, seen_by_b = len(a.uris), len(b.uris)
            with anyio.fail_after(30):
                await b.until(seen_by_b + 2)  # two more periods for b: a would have had one by now
            assert len(a.uris) == seen_by_a, a.uris
        finally:
            await toggle_updates(client_a, "Stopped")
    assert c.uris == []


async def test_resource_updates_reach_only_the_2026_client_listening_for_that_resource(gw: ServedGateway) -> None:
    watched, other = DOC + "structure.md", DOC + "startup.md"
    a, b = Updates(), Updates()

    async def collect(client: Client, into: Updates, uri: str, *, task_status: TaskStatus[None]) -> None:
        async with client.listen(resource_subscriptions=[uri]) as sub:
            task_status.started()
            async for event in sub:
                if isinstance(event, ResourceUpdated):
                    into.record(event.uri)

    async with (
        gw.client(mode="2026-07-28") as client_a,
        gw.client(mode="2026-07-28") as client_b,
        anyio.create_task_group() as tg,
    ):
        await tg.start(collect, client_a, a, watched)
        await tg.start(collect, client_b, b, other)
        await toggle_updates(client_a, "Started")
        try:
            with anyio.fail_after(30):
                await a.until(2)
                await b.until(1)
        finally:
            await toggle_updates(client_a, "Stopped")
            tg.cancel_scope.cancel()
    assert set(a.uris) == {watched}
    assert set(b.uris) == {other}


# -- 3. prompts and completions ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_are_namespaced_and_got_from_their_backend(gw: ServedGateway, mode: str) -> None:
    async with direct() as backend, gw.client(mode=mode) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        own = (await backend.list_prompts()).prompts
        assert own
        for prompt in own:
            assert prompts[f"ev__{prompt.name}"] == prompt.model_copy(update={"name": f"ev__{prompt.name}"})
        assert "echo__hello" in prompts and "hello" not in prompts

        simple = await client.get_prompt("ev__simple-prompt")
        assert simple.messages == (await backend.get_prompt("simple-prompt")).messages
        args = {"city": "Paris", "state": "Texas"}
        weather = await client.get_prompt("ev__args-prompt", args)
        assert weather.messages == (await backend.get_prompt("args-prompt", args)).messages
        assert weather.messages[0].content == types.TextContent(type="text", text="What's weather in Paris, Texas?")
        hello = await client.get_prompt("echo__hello", {"who": "Ada"})
        assert hello.messages[0].content == types.TextContent(type="text", text="Hello Ada from echo")

        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("ev__no-such-prompt")
        assert "ev__no-such-prompt" in unknown.value.error.message


@pytest.mark.parametrize("mode", MODES)
async def test_completions_for_prompt_and_template_arguments_come_from_the_owning_backend(
    gw: ServedGateway, mode: str
) -> None:
    async with gw.client(mode=mode) as client:
        prompt = types.PromptReference(type="ref/prompt", name="ev__completable-prompt")
        department = await client.complete(prompt, {"name": "department", "value": "S"})
        assert department.completion.values == ["Sales", "Support"]
        # The context (earlier arguments) reaches the backend too.
        person = await client.complete(prompt, {"name": "name", "value": ""}, context_arguments={"department": "Sales"})
        assert person.completion.values == ["David", "Eve", "Frank"]

        template = types.ResourceTemplateReference(type="ref/resource", uri=TEXT_TEMPLATE)
        assert (await client.complete(template, {"name": "resourceId", "value": "42"})).completion.values == ["42"]
        assert (await client.complete(template, {"name": "resourceId", "value": "x"})).completion.values == []

        with pytest.raises(MCPError) as not_served:  # echo's own prompt goes to echo, which completes nothing
            await client.complete(types.PromptReference(type="ref/prompt", name="echo__hello"),
                                  {"name": "who", "value": "A"})
        assert not_served.value.error.code == types.METHOD_NOT_FOUND

        with pytest.raises(MCPError) as unknown:
            await client.complete(types.PromptReference(type="ref/prompt", name="nope__prompt"),
                                  {"name": "a", "value": ""})
        assert "nope__prompt" in unknown.value.error.message


# -- 4. progress ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_progress_reaches_the_calling_client_under_its_own_token(gw: ServedGateway, mode: str) -> None:
    reports: dict[int, list[tuple[float, float | None]]] = {3: [], 5: []}
    results: dict[int, types.CallToolResult] = {}

    async def run(steps: int) -> None:  # two clients at once on the one backend connection
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            reports[steps].append((progress, total))

        async with gw.client(mode=mode) as client:
            results[steps] = await client.call_tool(
                "ev__trigger-long-running-operation", {"duration": 0.5, "steps": steps}, progress_callback=on_progress)

    async with anyio.create_task_group() as tg:
        for steps in reports:
            tg.start_soon(run, steps)
    for steps, seen in reports.items():
        assert f"Steps: {steps}." in text(results[steps])
        assert seen == [(float(i), float(steps)) for i in range(1, steps + 1)]


# -- 5. logging ----------------------------------------------------------------------------------


class Logs:
    def __init__(self) -> None:
        self.received: list[tuple[str, Any, str | None]] = []

    async def __call__(self, params: types.LoggingMessageNotificationParams) -> None:
        self.received.append((params.level, params.data, params.logger))


async def test_backend_logs_reach_the_calling_handshake_era_client_and_honour_its_level(gw: ServedGateway) -> None:
    a, b = Logs(), Logs()
    async with (
        gw.client(mode="legacy", logging_callback=a) as client_a,
        gw.client(mode="legacy", logging_callback=b) as client_b,
    ):
        await client_a.call_tool("echo__log", {"level": "info", "message": "info before setLevel"})
        await client_a.set_logging_level("warning")
        await client_a.call_tool("echo__log", {"level": "info", "message": "info after setLevel"})
        await client_a.call_tool("echo__log", {"level": "error", "message": "error after setLevel"})
        await client_b.call_tool("echo__log", {"level": "info", "message": "info for b"})  # b set no level
    assert a.received == [("info", "info before setLevel", "echo"), ("error", "error after setLevel", "echo")]
    assert b.received == [("info", "info for b", "echo")]


async def test_backend_logs_reach_the_calling_2026_client_at_the_level_it_asked_for(gw: ServedGateway) -> None:
    a, b, quiet = Logs(), Logs(), Logs()
    async with (
        gw.client(mode="2026-07-28", logging_callback=a, log_level="warning") as client_a,
        gw.client(mode="2026-07-28", logging_callback=b, log_level="debug") as client_b,
        gw.client(mode="2026-07-28", logging_callback=quiet) as client_quiet,  # asked for no logs
    ):
        await client_a.call_tool("echo__log", {"level": "info", "message": "info for a"})
        await client_a.call_tool("echo__log", {"level": "error", "message": "error for a"})
        await client_b.call_tool("echo__log", {"level": "info", "message": "info for b"})
        await client_quiet.call_tool("echo__log", {"level": "emergency", "message": "unasked"})
    assert a.received == [("error", "error for a", "echo")]
    assert b.received == [("info", "info for b", "echo")]
    assert quiet.received == []


# -- 6. list_changed -----------------------------------------------------------------------------


async def test_a_backend_list_change_reaches_handshake_era_clients_as_notifications(gw: ServedGateway) -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    grower = GROWER["legacy"]
    async with gw.client(mode="legacy", message_handler=on_message) as client:
        assert f"{grower}__grown" not in {t.name for t in (await client.list_tools()).tools}
        await client.call_tool(f"{grower}__grow", {})
        with anyio.fail_after(30):
            await changed.wait()
        assert f"{grower}__grown" in {t.name for t in (await client.list_tools()).tools}


async def test_a_backend_list_change_reaches_2026_clients_through_listen(gw: ServedGateway) -> None:
    grower = GROWER["2026-07-28"]
    async with gw.client(mode="2026-07-28") as client:
        assert f"{grower}__grown" not in {t.name for t in (await client.list_tools()).tools}
        async with client.listen(tools_list_changed=True) as sub:
            await client.call_tool(f"{grower}__grow", {})
            with anyio.fail_after(30):
                async for event in sub:
                    if isinstance(event, ToolsListChanged):
                        break
        assert f"{grower}__grown" in {t.name for t in (await client.list_tools()).tools}


# -- 7. capabilities -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_the_gateway_advertises_what_it_relays(gw: ServedGateway, mode: str) -> None:
    # A client pinned to 2026-07-28 sends no `server/discover` and the SDK makes up an empty result for it;
    # "auto" asks the gateway (and lands on 2026-07-28, asserted below), so its capabilities are the ones served.
    async with gw.client(mode="auto" if mode == "2026-07-28" else mode) as client:
        caps = client.server_capabilities
        assert client.protocol_version == PROTOCOL[mode]
    assert caps.tools is not None and caps.tools.list_changed is True
    assert caps.resources is not None and caps.resources.subscribe is True and caps.resources.list_changed is True
    assert caps.prompts is not None and caps.prompts.list_changed is True
    assert caps.completions is not None
    assert caps.logging is not None
