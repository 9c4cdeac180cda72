"""A backend that is an MCP server reached through a transport: the base of `stdio` and `http`.

One long-lived `mcp.Client` per backend, opened once and shared by every call;
calls run concurrently on it (the SDK multiplexes by request id). Requests are
forwarded with `session.send_request`, so results come back exactly as the
backend sent them (no re-validation, no extra `tools/list`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import anyio
import mcp_types as types
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup, TaskStatus
from mcp import Client, MCPError
from mcp.client.session import ClientRequestContext
from mcp.shared.dispatcher import ProgressFnT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field, RootModel

from gateway.backends import Backend, BackendConfig, CallContext, ClientAsk, ProgressFn
from gateway.errors import BackendProtocolError, BackendTimeout, BackendUnavailable

log = logging.getLogger("manifold.backend")

Transport = AbstractAsyncContextManager[tuple[ObjectReceiveStream[Any], ObjectSendStream[Any]]]
R = TypeVar("R", bound=BaseModel)
_LOST = (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError)
CLIENT_LINK_IDLE_S = 300.0
"""A per-client connection closes after this long without a call."""
MAX_INPUT_ROUNDS = 10
"""Input-required rounds one call of a 2026-07-28 backend may take."""
MAX_CLIENT_LINKS = 32
"""Per-client connections one backend keeps open at most; past it, the least recently used idle one closes."""


class _CallOutcome(RootModel[types.CallToolResult | types.InputRequiredResult]):
    """What a 2026-07-28 backend may answer a `tools/call` with."""


@dataclass(eq=False)
class _Link:
    """One `mcp.Client` connection to the backend, and the calls in flight on it."""

    client: Client | None = None
    inflight: dict[int, CallContext] = field(default_factory=dict)
    last_used: float = 0.0
    closed: anyio.Event = field(default_factory=anyio.Event)


class McpBackendConfig(BackendConfig):
    mode: Literal["legacy", "auto", "2026-07-28"] = Field(
        default="legacy",
        description="protocol negotiation with the backend: legacy (handshake, push notifications), "
        "auto (probe), or pin 2026-07-28",
    )


class _Watched(ObjectReceiveStream[Any]):
    """The transport's read stream, telling us when it ends (process exited, stream closed)."""

    def __init__(self, inner: ObjectReceiveStream[Any], on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except _LOST:
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


class McpBackend(Backend):
    """Subclasses implement `transport()`; everything else is shared."""

    Config: ClassVar[type[McpBackendConfig]] = McpBackendConfig
    config: McpBackendConfig

    def __init__(self, name: str, config: BackendConfig) -> None:
        super().__init__(name, config)
        self._client: Client | None = None
        self._inflight: dict[int, CallContext] = {}
        self._lost: anyio.Event | None = None
        self._links: dict[str, _Link] = {}  # session = "per_client": client session -> its own connection
        self._opening: dict[str, anyio.Event] = {}
        self._link_tasks: TaskGroup | None = None

    def transport(self) -> Transport:
        """A fresh transport to the server, as an async context manager yielding (read, write)."""
        raise NotImplementedError

    def describe_failure(self, exc: BaseException) -> str:
        """One line on why connecting failed, for /status. Subclasses add what they know."""
        return _one_line(exc)

    @contextlib.asynccontextmanager
    async def _watched_transport(
        self, on_end: Callable[[], None]
    ) -> AsyncIterator[tuple[ObjectReceiveStream[Any], ObjectSendStream[Any]]]:
        async with self.transport() as (read, write):
            yield _Watched(read, on_end), write

    def _new_client(self, on_end: Callable[[], None], inflight: Mapping[int, CallContext]) -> Client:
        """A client whose sampling, elicitation and roots requests go to the caller of a call in `inflight`.

        Passing the callbacks declares those capabilities to the backend; whether
        a request can reach a client is decided per request (`_ask_caller`).
        """
        ask = functools.partial(self._ask_caller, inflight)

        async def sampling(
            context: ClientRequestContext, params: types.CreateMessageRequestParams
        ) -> types.CreateMessageResult | types.ErrorData:
            return _expect(await ask(types.CreateMessageRequest(params=params)), types.CreateMessageResult)

        async def elicitation(
            context: ClientRequestContext, params: types.ElicitRequestParams
        ) -> types.ElicitResult | types.ErrorData:
            return _expect(await ask(types.ElicitRequest(params=params)), types.ElicitResult)

        async def roots(context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
            return _expect(await ask(types.ListRootsRequest()), types.ListRootsResult)

        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            await self._on_log(inflight, params)

        return Client(
            self._watched_transport(on_end),
            mode=self.config.mode,
            cache=None,
            message_handler=self._on_message,
            logging_callback=on_log,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
            list_roots_callback=roots,
            client_info=types.Implementation(name="manifold", version="0.1.0"),
        )

    def _mark_lost(self) -> None:
        if self._lost is not None:
            self._lost.set()

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        self._lost = lost = anyio.Event()
        client = self._new_client(self._mark_lost, self._inflight)
        async with anyio.create_task_group() as tg, client:
            self._client = client
            self.protocol = client.protocol_version
            self._link_tasks = tg

            async def watch() -> None:
                await lost.wait()
                self._client = None
                await self.listener.connection_lost(self, "the connection closed (process exited?)")

            tg.start_soon(watch)
            try:
                yield
            finally:
                self._client = None
                self._link_tasks = None
                self._links.clear()
                tg.cancel_scope.cancel()

    def _session(self) -> Client:
        if self._client is None:
            raise BackendUnavailable(self.name, f"backend {self.name!r} is not connected")
        return self._client

    async def _send(
        self, request: types.ClientRequest, result: type[R], ctx: CallContext | None = None,
        client: Client | None = None,
    ) -> R:
        client = client or self._session()
        try:
            return await client.session.send_request(
                request,
                result,
                request_read_timeout_seconds=ctx.timeout_s if ctx else None,
                progress_callback=_progress_callback(ctx.progress) if ctx else None,
            )
        except MCPError as exc:
            if exc.error.code == types.REQUEST_TIMEOUT:
                raise BackendTimeout(self.name, f"backend {self.name!r} did not answer in time") from exc
            if exc.error.code == types.CONNECTION_CLOSED:
                raise BackendUnavailable(self.name, f"backend {self.name!r} closed the connection") from exc
            raise
        except _LOST as exc:
            raise BackendUnavailable(self.name, f"backend {self.name!r} closed the connection") from exc
        except ValueError as exc:  # a result that is not valid MCP (pydantic ValidationError)
            raise BackendProtocolError(self.name, f"backend {self.name!r} sent an invalid result: "
                                       f"{_one_line(exc)}") from exc

    async def check(self) -> None:
        client = self._session()
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            await self._send(types.ListToolsRequest(), types.ListToolsResult, CallContext(timeout_s=10))
        else:
            await self._send(types.PingRequest(), types.EmptyResult, CallContext(timeout_s=10))

    async def _pages(self, make: Callable[[str | None], Awaitable[tuple[list[Any], str | None]]]) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(10_000):  # a backend that pages forever still ends
            try:
                page, cursor = await make(cursor)
            except MCPError as exc:
                if exc.error.code == types.METHOD_NOT_FOUND:  # capability without the list: none
                    return items
                raise
            items.extend(page)
            if not cursor:
                break
        return items

    def _capable(self, what: str) -> bool:
        """Whether to list `what`. A 2026-07-28 link pinned without `server/discover` knows no capabilities:
        it asks, and a list the backend does not have comes back empty (METHOD_NOT_FOUND)."""
        client = self._session()
        caps = client.server_capabilities
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS and caps.model_dump(exclude_none=True) == {}:
            return True
        return getattr(caps, what, None) is not None

    async def list_tools(self) -> list[types.Tool]:
        async def page(cursor: str | None) -> tuple[list[Any], str | None]:
            r = await self._send(types.ListToolsRequest(params=_cursor(cursor)), types.ListToolsResult)
            return list(r.tools), r.next_cursor

        return await self._pages(page) if self._capable("tools") else []

    async def list_resources(self) -> list[types.Resource]:
        async def page(cursor: str | None) -> tuple[list[Any], str | None]:
            r = await self._send(types.ListResourcesRequest(params=_cursor(cursor)), types.ListResourcesResult)
            return list(r.resources), r.next_cursor

        return await self._pages(page) if self._capable("resources") else []

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        async def page(cursor: str | None) -> tuple[list[Any], str | None]:
            r = await self._send(types.ListResourceTemplatesRequest(params=_cursor(cursor)),
                                 types.ListResourceTemplatesResult)
            return list(r.resource_templates), r.next_cursor

        return await self._pages(page) if self._capable("resources") else []

    async def list_prompts(self) -> list[types.Prompt]:
        async def page(cursor: str | None) -> tuple[list[Any], str | None]:
            r = await self._send(types.ListPromptsRequest(params=_cursor(cursor)), types.ListPromptsResult)
            return list(r.prompts), r.next_cursor

        return await self._pages(page) if self._capable("prompts") else []

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        params = types.CallToolRequestParams(name=name, arguments=arguments, _meta=_hop_meta(ctx.meta))
        link = None
        if self.config.session == "per_client" and ctx.client is not None:
            link = await self._client_link(ctx.client)
        inflight = link.inflight if link else self._inflight
        client = (link.client if link else None) or self._session()
        key = id(ctx)
        inflight[key] = ctx
        try:
            if client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                return await self._send(types.CallToolRequest(params=params), types.CallToolResult, ctx, client)
            return await self._call_with_rounds(params, ctx, client, inflight)
        finally:
            del inflight[key]
            if link:
                link.last_used = anyio.current_time()

    async def _call_with_rounds(
        self, params: types.CallToolRequestParams, ctx: CallContext, client: Client, inflight: Mapping[int, CallContext]
    ) -> types.CallToolResult:
        """A 2026-07-28 backend may answer `InputRequiredResult`: ask the caller, retry with the answers."""
        for _ in range(MAX_INPUT_ROUNDS):
            outcome = await self._send(types.CallToolRequest(params=params), _CallOutcome, ctx, client)
            if isinstance(outcome.root, types.CallToolResult):
                return outcome.root
            responses: dict[str, Any] = {}
            for name, request in (outcome.root.input_requests or {}).items():
                answer = await self._ask_caller(inflight, request)
                if isinstance(answer, types.ErrorData):
                    return types.CallToolResult(content=[types.TextContent(
                        type="text", text=f"backend {self.name!r} needed input the client could not give: "
                                          f"{answer.message}")], is_error=True)
                responses[name] = answer
            params = params.model_copy(update={"input_responses": responses or None,
                                               "request_state": outcome.root.request_state})
        return types.CallToolResult(content=[types.TextContent(
            type="text", text=f"backend {self.name!r} asked for input more than {MAX_INPUT_ROUNDS} times")],
            is_error=True)

    # -- session = "per_client": a connection of its own for each client session ---------------

    async def _client_link(self, client: str) -> _Link | None:
        """The open connection of this client session, opened on its first call; None: use the shared one."""
        while True:
            link = self._links.get(client)
            if link is not None and not link.closed.is_set():
                link.last_used = anyio.current_time()
                return link
            opening = self._opening.get(client)
            if opening is None:
                break
            await opening.wait()  # another call of this client is opening it
        if self._link_tasks is None:
            return None
        self._make_room()
        self._opening[client] = done = anyio.Event()
        try:
            opened: _Link = await self._link_tasks.start(self._serve_link, client)
        except Exception as exc:
            raise BackendUnavailable(self.name, f"backend {self.name!r}: opening a connection for this client "
                                     f"failed: {self.describe_failure(exc)}") from exc
        finally:
            del self._opening[client]
            done.set()
        self._links[client] = opened
        return opened

    def _make_room(self) -> None:
        if len(self._links) < MAX_CLIENT_LINKS:
            return
        idle = [(link.last_used, key) for key, link in self._links.items() if not link.inflight]
        if idle:
            _, key = min(idle)
            self._links.pop(key).closed.set()

    async def _serve_link(self, client: str, *, task_status: TaskStatus[_Link]) -> None:
        """Hold one client session's connection open until it is idle for long, evicted, or lost."""
        link = _Link(last_used=anyio.current_time())
        try:
            async with self._new_client(link.closed.set, link.inflight) as connection:
                link.client = connection
                log.info("backend %s: opened a connection for client session %s", self.name, client)
                task_status.started(link)
                while not link.closed.is_set():
                    with anyio.move_on_after(CLIENT_LINK_IDLE_S / 10):
                        await link.closed.wait()
                    if not link.inflight and anyio.current_time() - link.last_used > CLIENT_LINK_IDLE_S:
                        break
        finally:
            link.closed.set()
            if self._links.get(client) is link:
                del self._links[client]

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        params = types.ReadResourceRequestParams(uri=uri)
        return await self._send(types.ReadResourceRequest(params=params), types.ReadResourceResult)

    async def subscribe_resource(self, uri: str) -> None:
        await self._send(types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri)), types.EmptyResult)

    async def unsubscribe_resource(self, uri: str) -> None:
        params = types.UnsubscribeRequestParams(uri=uri)
        await self._send(types.UnsubscribeRequest(params=params), types.EmptyResult)

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        params = types.GetPromptRequestParams(name=name, arguments=arguments)
        return await self._send(types.GetPromptRequest(params=params), types.GetPromptResult)

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
    ) -> types.CompleteResult:
        params = types.CompleteRequestParams(ref=ref, argument=argument, context=context)
        return await self._send(types.CompleteRequest(params=params), types.CompleteResult)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            log.warning("backend %s sent something that is not MCP: %s", self.name, _one_line(message))
            return
        match message:
            case types.ToolListChangedNotification() | types.PromptListChangedNotification() | (
                types.ResourceListChangedNotification()
            ):
                await self.listener.list_changed(self)
            case types.ResourceUpdatedNotification(params=params):
                await self.listener.resource_updated(self, str(params.uri))
            case _:
                pass

    async def _on_log(
        self, inflight: Mapping[int, CallContext], params: types.LoggingMessageNotificationParams
    ) -> None:
        """A backend's log message goes to the client whose call it serves, when that can be told."""
        caller = _caller(inflight)
        if caller is not None and caller.log is not None:
            logger = f"{self.name}/{params.logger}" if params.logger else self.name  # always names the backend
            await caller.log(params.level, params.data, logger)
        else:
            log.info("[%s] %s: %s", self.name, params.level, params.data)

    async def _ask_caller(self, inflight: Mapping[int, CallContext], request: ClientAsk) -> BaseModel:
        """A backend's sampling, elicitation or roots request, put to the client whose call it serves.

        The SDK does not say which call a backend's request belongs to; it is
        known when every call in flight on this connection is one client's (a
        per-client connection, or a shared one with one caller). Otherwise the
        backend gets an error at once, never a hang.
        """
        kind = request.method
        if not inflight:
            return _refuse(f"manifold: backend {self.name!r} sent {kind} while no call of it is in flight")
        caller = _caller(inflight)
        if caller is None:
            return _refuse(f"manifold: {kind} from backend {self.name!r} cannot be routed: calls of several "
                           "clients are in flight on its shared connection; set session = \"per_client\" on it")
        if caller.ask is None:
            return _refuse(f"manifold: the client calling backend {self.name!r} cannot receive {kind} requests")
        try:
            return await caller.ask(request)
        except MCPError as exc:
            return exc.error


def _caller(inflight: Mapping[int, CallContext]) -> CallContext | None:
    """The call a backend's unsolicited message belongs to: the only one, or the latest when all are one client's."""
    calls = list(inflight.values())
    if len(calls) == 1:
        return calls[0]
    clients = {c.client for c in calls}
    if len(clients) == 1 and None not in clients:
        return calls[-1]
    return None


def _expect(answer: BaseModel, kind: type[R]) -> R | types.ErrorData:
    if isinstance(answer, kind | types.ErrorData):
        return answer
    return _refuse(f"manifold: the client answered with {type(answer).__name__}, not {kind.__name__}")


def _refuse(message: str) -> types.ErrorData:
    log.warning(message)
    return types.ErrorData(code=types.INVALID_REQUEST, message=message)


def _progress_callback(progress: ProgressFn | None) -> ProgressFnT | None:
    """The gateway's positional `ProgressFn` as the SDK's callback protocol (which names its parameters)."""
    if progress is None:
        return None
    report = progress

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        await report(progress, total, message)

    return on_progress


def _cursor(cursor: str | None) -> types.PaginatedRequestParams | None:
    return types.PaginatedRequestParams(cursor=cursor) if cursor else None


def _hop_meta(meta: Any) -> dict[str, Any] | None:
    """Drop what must not cross the hop: the caller's progress token and the 2026 envelope keys."""
    if not meta:
        return None
    out = {k: v for k, v in meta.items() if k != "progress_token" and k != "progressToken"
           and not k.startswith("io.modelcontextprotocol/")}
    return out or None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _one_line(exc.exceptions[0])
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
