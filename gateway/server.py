"""The MCP server clients talk to: the one place gateway errors become MCP errors.

Built on the SDK's low-level `Server`, which serves both protocol eras on every
transport. Lists come from the router's catalog snapshot (no backend is asked
per request); calls go through `Router.call`. `list_changed` reaches
handshake-era clients as notifications on their sessions and 2026-07-28
clients through `subscriptions/listen`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import mcp_types as types
from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from gateway import asks
from gateway.backends import AskFn, Backend, CallContext
from gateway.errors import GatewayError, UnknownTool
from gateway.routing import Router

log = logging.getLogger("manifold.server")

PAGE_SIZE = 500
_MAX_SESSIONS = 10_000
_LOG_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"
)


class _Server(Server[Any]):
    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        """Advertise listChanged to handshake-era clients (the HTTP manager passes no options)."""
        options = notification_options or NotificationOptions(
            tools_changed=True, resources_changed=True, prompts_changed=True
        )
        return super().create_initialization_options(options, experimental_capabilities, extensions)


class GatewayServer:
    """Builds the SDK server and keeps what it needs to notify clients."""

    def __init__(self, router: Router, *, name: str = "manifold", version: str = "0.1.0") -> None:
        self.router = router
        self.bus = InMemorySubscriptionBus()
        self.bridge = asks.Bridge()
        self._sessions: OrderedDict[int, ServerSession] = OrderedDict()
        self._subscribers: dict[str, OrderedDict[str, ServerSession]] = {}  # URI -> client key -> session
        self._listening: dict[str, int] = {}  # URI -> open 2026-07-28 listen streams that asked for it
        self._listen = ListenHandler(self.bus)
        self._log_levels: OrderedDict[str, types.LoggingLevel] = OrderedDict()  # client key -> level it set
        self.server = _Server(
            name,
            version=version,
            instructions="Manifold gateway: tools of many MCP backends under one endpoint. "
            "Call gateway__status for backend health, gateway__coordinate to run several calls as one plan.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            get_tool_input_schema=router.catalog_input_schema,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
            on_subscribe_resource=self._subscribe,
            on_unsubscribe_resource=self._unsubscribe,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
            on_completion=self._complete,
            on_subscriptions_listen=self._listen_for,
        )
        self.server.add_notification_handler(
            "notifications/initialized", types.NotificationParams, self._on_initialized
        )
        # logging/setLevel for handshake-era clients; registered here, as the constructor kwarg warns (deprecated)
        self.server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, self._set_log_level)
        router.on_change.append(self.notify_list_changed)

    # -- sessions and notifications ----------------------------------------------

    async def _on_initialized(self, ctx: ServerRequestContext[Any, Any], params: types.NotificationParams) -> None:
        self._remember(self._sessions, id(ctx.session), ctx.session)

    def _remember(self, registry: OrderedDict[Any, ServerSession], key: object, session: ServerSession) -> None:
        registry[key] = session
        while len(registry) > _MAX_SESSIONS:  # sends to closed sessions are dropped; keep the registry bounded
            registry.popitem(last=False)

    async def notify_list_changed(self) -> None:
        for session in list(self._sessions.values()):
            try:
                await session.send_tool_list_changed()
                await session.send_resource_list_changed()
                await session.send_prompt_list_changed()
            except Exception as exc:  # a client gone away must not stop the others hearing it
                log.debug("list_changed to a closed session: %s", exc)
                self._sessions.pop(id(session), None)
        for event in (ToolsListChanged(), ResourcesListChanged(), PromptsListChanged()):
            await self.bus.publish(event)

    async def notify_resource_updated(self, backend: str, uri: str) -> None:
        exposed = next((r.name for r in self.router.catalog.resource_routes.values()
                        if r.backend == backend and r.original == uri), uri)
        for key, session in list(self._subscribers.get(exposed, {}).items()):
            try:
                await session.send_resource_updated(exposed)
            except Exception:
                self._subscribers[exposed].pop(key, None)
        await self.bus.publish(ResourceUpdated(uri=exposed))

    async def _set_log_level(
        self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        """A client's minimum level for the backends' log messages forwarded during its calls."""
        key = _client_key(ctx)
        self._log_levels[key] = params.level
        self._log_levels.move_to_end(key)
        while len(self._log_levels) > _MAX_SESSIONS:
            self._log_levels.popitem(last=False)
        return types.EmptyResult()

    def _log_wanted(self, ctx: ServerRequestContext[Any, Any], level: types.LoggingLevel) -> bool:
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:  # 2026: the SDK filters by the request's opt-in
            return True
        minimum = self._log_levels.get(_client_key(ctx))
        return minimum is None or _LOG_LEVELS.index(level) >= _LOG_LEVELS.index(minimum)

    # -- tools -------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools, cursor = _page(self.router.catalog.tools, _cursor(params))
        return types.ListToolsResult(tools=tools, next_cursor=cursor)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        session = ctx.session
        progress = None
        if ctx.meta and ctx.meta.get("progress_token") is not None:
            async def progress(done: float, total: float | None, message: str | None) -> None:
                await session.report_progress(done, total, message)

        request_id = ctx.request_id

        async def log_to_client(level: types.LoggingLevel, data: Any, logger: str | None) -> None:
            if not self._log_wanted(ctx, level):
                return
            try:
                await session.send_log_message(level, data, logger, related_request_id=request_id)
            except Exception as exc:
                log.debug("log to client dropped: %s", exc)

        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        if modern and params.request_state is not None:  # a client back with answers for a parked call
            return await self.bridge.resume(params.request_state, params.input_responses)
        client = None if modern else _client_key(ctx)

        async def call(ask: AskFn | None) -> types.CallToolResult:
            call_ctx = CallContext(progress=progress, log=log_to_client, meta=ctx.meta, ask=ask, client=client)
            try:
                return await self.router.call(params.name, params.arguments or {}, ctx=call_ctx)
            except UnknownTool as exc:
                raise MCPError(types.INVALID_PARAMS, str(exc)) from None
            except GatewayError as exc:
                raise MCPError(types.INTERNAL_ERROR, str(exc)) from None

        if modern and self.bridge.ready and asks.can_answer(session):
            return await self.bridge.start(session, call)
        return await call(asks.direct(session, request_id))

    async def _forward(self, backend: str, backend_call: Callable[[Backend], Awaitable[T]]) -> T:
        try:
            return await self.router.guarded(backend, backend_call)
        except GatewayError as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
        except NotImplementedError as exc:
            raise MCPError(types.METHOD_NOT_FOUND, str(exc)) from None

    # -- resources ---------------------------------------------------------------

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        resources, cursor = _page(self.router.catalog.resources, _cursor(params))
        return types.ListResourcesResult(resources=resources, next_cursor=cursor)

    async def _list_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        templates, cursor = _page(self.router.catalog.templates, _cursor(params))
        return types.ListResourceTemplatesResult(resource_templates=templates, next_cursor=cursor)

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        backend, original = self._resource_owner(str(params.uri))
        result = await self._forward(backend, backend_call=lambda b: b.read_resource(original))
        if original != str(params.uri):
            contents = [c.model_copy(update={"uri": str(params.uri)}) for c in result.contents]
            result = result.model_copy(update={"contents": contents})
        return result

    def _resource_owner(self, uri: str) -> tuple[str, str]:
        route = self.router.catalog.resource_route(uri)
        if route is None:
            raise MCPError(-32002, f"unknown resource {uri!r}")
        return route.backend, route.original

    async def _subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        backend, original = self._resource_owner(str(params.uri))
        await self._forward(backend, backend_call=lambda b: b.subscribe_resource(original))
        self._remember(self._subscribers.setdefault(str(params.uri), OrderedDict()), _client_key(ctx), ctx.session)
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        subscribers = self._subscribers.get(str(params.uri), OrderedDict())
        subscribers.pop(_client_key(ctx), None)  # ServerSession objects are per request: the client's key
        if not subscribers and not self._listening.get(str(params.uri)):
            backend, original = self._resource_owner(str(params.uri))
            await self._forward(backend, backend_call=lambda b: b.unsubscribe_resource(original))
        return types.EmptyResult()

    async def _listen_for(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """A 2026-07-28 listen stream: the backends watch the resources it names for as long as it is open."""
        async def watch(backend: str, original: str, on: bool) -> None:
            async def send(b: Backend) -> None:
                await (b.subscribe_resource(original) if on else b.unsubscribe_resource(original))

            await self._forward(backend, send)

        watched: list[tuple[str, str, str]] = []
        for uri in params.notifications.resource_subscriptions or ():
            route = self.router.catalog.resource_route(uri)
            if route is None:  # honoured and never fires, as for any URI nothing serves
                continue
            if not self._subscribers.get(uri) and not self._listening.get(uri):
                try:
                    await watch(route.backend, route.original, on=True)
                except MCPError as exc:
                    log.warning("backend %s cannot watch %s for a listen stream: %s", route.backend, uri, exc)
                    continue
            self._listening[uri] = self._listening.get(uri, 0) + 1
            watched.append((uri, route.backend, route.original))
        try:
            return await self._listen(ctx, params)
        finally:
            with anyio.CancelScope(shield=True):  # the client closing its stream cancels this handler
                for uri, backend, original in watched:
                    self._listening[uri] -= 1
                    if self._listening[uri] or self._subscribers.get(uri):
                        continue
                    del self._listening[uri]
                    try:
                        await watch(backend, original, on=False)
                    except MCPError as exc:
                        log.debug("unsubscribing %s at backend %s: %s", uri, backend, exc)

    # -- prompts and completions ---------------------------------------------------

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        prompts, cursor = _page(self.router.catalog.prompts, _cursor(params))
        return types.ListPromptsResult(prompts=prompts, next_cursor=cursor)

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        route = self.router.catalog.prompt_routes.get(params.name)
        if route is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown prompt {params.name!r}")
        return await self._forward(
            route.backend, backend_call=lambda b: b.get_prompt(route.original, params.arguments)
        )

    async def _complete(
        self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            route = self.router.catalog.prompt_routes.get(ref.name)
            if route is None:
                raise MCPError(types.INVALID_PARAMS, f"unknown prompt {ref.name!r}")
            backend, ref = route.backend, ref.model_copy(update={"name": route.original})
        else:
            troute = self.router.catalog.template_routes.get(ref.uri)
            if troute is None:
                raise MCPError(types.INVALID_PARAMS, f"unknown resource template {ref.uri!r}")
            backend = troute.backend
        return await self._forward(
            backend, backend_call=lambda b: b.complete(ref, params.argument, params.context)
        )


T = TypeVar("T")


def _client_key(ctx: ServerRequestContext[Any, Any]) -> str:
    """Which client session a handshake-era request came from: its `Mcp-Session-Id` over HTTP, else its connection.

    The SDK has no public connection handle; `ServerSession` objects are made
    per request, so the connection they share is what identifies a stdio or
    in-process client.
    """
    headers = getattr(ctx.request, "headers", None)
    session_id = headers.get("mcp-session-id") if headers is not None else None
    if session_id:
        return f"http:{session_id}"
    return f"connection:{id(getattr(ctx.session, '_connection', ctx.session))}"


def _cursor(params: types.PaginatedRequestParams | None) -> str | None:
    """The cursor of a list request (the SDK passes the params model, typed as optional)."""
    return params.cursor if params is not None else None


def _page(items: list[Any], cursor: str | None) -> tuple[list[Any], str | None]:
    """The gateway's own pagination: the cursor is the offset of the next page."""
    if cursor is None and len(items) <= PAGE_SIZE:
        return items, None
    try:
        start = int(cursor or 0)
    except ValueError:
        raise MCPError(types.INVALID_PARAMS, f"invalid cursor {cursor!r}") from None
    end = start + PAGE_SIZE
    return items[start:end], (str(end) if end < len(items) else None)
