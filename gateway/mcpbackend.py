"""A backend that is an MCP server reached through a transport: the base of `stdio` and `http`.

One long-lived `mcp.Client` per backend, opened once and shared by every call;
calls run concurrently on it (the SDK multiplexes by request id). Requests are
forwarded with `session.send_request`, so results come back exactly as the
backend sent them (no re-validation, no extra `tools/list`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Literal, TypeVar

import anyio
import mcp_types as types
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp import Client, MCPError
from mcp.shared.dispatcher import ProgressFnT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

from gateway.backends import Backend, BackendConfig, CallContext, ProgressFn
from gateway.errors import BackendProtocolError, BackendTimeout, BackendUnavailable

log = logging.getLogger("manifold.backend")

Transport = AbstractAsyncContextManager[tuple[ObjectReceiveStream[Any], ObjectSendStream[Any]]]
R = TypeVar("R", bound=BaseModel)
_LOST = (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError)


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

    def transport(self) -> Transport:
        """A fresh transport to the server, as an async context manager yielding (read, write)."""
        raise NotImplementedError

    def describe_failure(self, exc: BaseException) -> str:
        """One line on why connecting failed, for /status. Subclasses add what they know."""
        return _one_line(exc)

    @contextlib.asynccontextmanager
    async def _watched_transport(self) -> AsyncIterator[tuple[ObjectReceiveStream[Any], ObjectSendStream[Any]]]:
        async with self.transport() as (read, write):
            yield _Watched(read, self._mark_lost), write

    def _mark_lost(self) -> None:
        if self._lost is not None:
            self._lost.set()

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        self._lost = lost = anyio.Event()
        client = Client(
            self._watched_transport(),
            mode=self.config.mode,
            cache=None,
            message_handler=self._on_message,
            logging_callback=self._on_log,
            client_info=types.Implementation(name="manifold", version="0.1.0"),
        )
        async with anyio.create_task_group() as tg, client:
            self._client = client
            self.protocol = client.protocol_version

            async def watch() -> None:
                await lost.wait()
                self._client = None
                await self.listener.connection_lost(self, "the connection closed (process exited?)")

            tg.start_soon(watch)
            try:
                yield
            finally:
                self._client = None
                tg.cancel_scope.cancel()

    def _session(self) -> Client:
        if self._client is None:
            raise BackendUnavailable(self.name, f"backend {self.name!r} is not connected")
        return self._client

    async def _send(self, request: types.ClientRequest, result: type[R], ctx: CallContext | None = None) -> R:
        client = self._session()
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
        caps = self._session().server_capabilities
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
        key = id(ctx)
        self._inflight[key] = ctx
        try:
            return await self._send(types.CallToolRequest(params=params), types.CallToolResult, ctx)
        finally:
            del self._inflight[key]

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

    async def _on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        """A backend's log message goes to the one call in flight; with several, it cannot be told apart."""
        targets = [c.log for c in self._inflight.values() if c.log is not None]
        if len(self._inflight) == 1 and targets:
            await targets[0](params.level, params.data, params.logger or self.name)
        else:
            log.info("[%s] %s: %s", self.name, params.level, params.data)


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
