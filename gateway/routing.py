"""The call path: from an exposed name to the backend that owns it, and back.

`Router` holds the current catalog snapshot and every backend's health. A call
is checked (route, arguments, health) without any await, then passes through
the middleware chain (built once) to the owning backend. A backend that cannot
serve costs one clear `isError` result at once, or is served by a fallback.
The router is also the `Toolbox` the coordination patterns run against.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio
import mcp_types as types
from mcp import MCPError

from gateway.backends import Backend, BackendConfig, CallContext, FallbackTarget
from gateway.catalog import Catalog, Listing, Route, exposed_name
from gateway.errors import BackendError, BackendTimeout, BackendUnavailable, GatewayError, UnknownTool
from gateway.health import Health
from gateway.metrics import Metrics
from gateway.middleware import Middleware, ToolCall, build_chain
from gateway.patterns.base import ToolInfo

log = logging.getLogger("manifold.routing")

T = TypeVar("T")
OwnTool = Callable[[dict[str, Any], CallContext], Awaitable[types.CallToolResult]]
DEGRADED_META = "manifold/degraded"


@dataclass(frozen=True)
class Fallback:
    tool: str
    renames: Mapping[str, str]


def error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class Router:
    """Routes calls; owns the catalog snapshot. One per gateway."""

    def __init__(
        self,
        backends: Mapping[str, Backend],
        configs: Mapping[str, BackendConfig],
        health: Mapping[str, Health],
        *,
        separator: str,
        call_timeout_s: float,
        hide_unavailable: bool,
        middleware: list[Middleware],
        metrics: Metrics,
        max_concurrent_calls: int,
    ) -> None:
        self.backends = backends
        self.configs = configs
        self.health = health
        self.separator = separator
        self.call_timeout_s = call_timeout_s
        self.hide_unavailable = hide_unavailable
        self.metrics = metrics
        self.listings: dict[str, Listing] = {}
        self.catalog = Catalog()
        self._own: dict[str, tuple[types.Tool, OwnTool]] = {}
        self._fallbacks: dict[str, list[Fallback]] = {}
        self._chain = build_chain(middleware, self._to_backend)
        self._limit = anyio.CapacityLimiter(max_concurrent_calls)
        self.on_change: list[Callable[[], Awaitable[None]]] = []

    # -- catalog ---------------------------------------------------------------

    def add_own_tool(self, tool: types.Tool, run: OwnTool) -> None:
        """A tool the gateway serves itself (`gateway__status`, `gateway__coordinate`, routes)."""
        self._own[tool.name] = (tool, run)

    @property
    def own_tools(self) -> Mapping[str, tuple[types.Tool, OwnTool]]:
        return self._own

    def rebuild(self) -> Catalog:
        """A new snapshot from the cached listings. Cheap: no backend is asked anything."""
        shown = {
            name: listing for name, listing in self.listings.items()
            if not (self.hide_unavailable and self.health[name].refusal() is not None)
        }
        namespaces = {n: (c.namespace if c.namespace is not None else n) for n, c in self.configs.items()}
        filters = {n: c.tools for n, c in self.configs.items()}
        self.catalog = Catalog.build(shown, namespaces, filters, self.separator, [t for t, _ in self._own.values()])
        self._fallbacks = self._resolve_fallbacks(self.catalog)
        return self.catalog

    async def set_listing(self, backend: Backend, listing: Listing | None) -> None:
        """A backend listed (or was lost: None). Rebuild and tell clients when what they see changed."""
        before = [t.name for t in self.catalog.tools]
        if listing is not None:
            self.listings[backend.name] = listing
        elif backend.name not in self.listings:
            self.listings[backend.name] = Listing()
        self.rebuild()
        if [t.name for t in self.catalog.tools] != before or listing is not None:
            for notify in self.on_change:
                await notify()

    def _resolve_fallbacks(self, catalog: Catalog) -> dict[str, list[Fallback]]:
        out: dict[str, list[Fallback]] = {}
        for name, cfg in sorted(self.configs.items()):
            for primary in cfg.fallback_for:
                for route in catalog.tool_routes.values():
                    if route.backend != primary:
                        continue
                    ns = cfg.namespace if cfg.namespace is not None else name
                    candidate = catalog.tool_routes.get(exposed_name(ns, self.separator, route.original))
                    if candidate is not None and candidate.backend == name:
                        out.setdefault(route.name, []).append(Fallback(candidate.name, {}))
            for own_tool, target in cfg.fallbacks.items():
                t = target if isinstance(target, FallbackTarget) else FallbackTarget(tool=target)
                for route in catalog.tool_routes.values():
                    if route.backend == name and route.original == own_tool:
                        out.setdefault(route.name, []).insert(0, Fallback(t.tool, t.arguments))
        return out

    def catalog_input_schema(self, name: str) -> dict[str, Any] | None:
        """The SDK's synchronous schema lookup for 2026 calls, from the snapshot."""
        return self.catalog.input_schema(name)

    async def guarded(self, backend: str, backend_call: Callable[[Backend], Awaitable[T]]) -> T:
        """A non-tool request to one backend: fail fast when it is down, bounded by the call timeout."""
        refusal = self.health[backend].refusal()
        if refusal is not None:
            raise BackendUnavailable(backend, refusal)
        try:
            with anyio.fail_after(self.call_timeout_s):
                return await backend_call(self.backends[backend])
        except TimeoutError:
            raise BackendTimeout(backend, f"backend {backend!r} did not answer in {self.call_timeout_s:g}s") from None

    # -- Toolbox (what patterns see) --------------------------------------------

    def lookup(self, name: str) -> ToolInfo | None:
        tool = self.catalog.tool(name)
        route = self.catalog.tool_routes.get(name)
        if tool is None or route is None:
            return None
        return ToolInfo(name, route.backend, tool.annotations, dict(tool.input_schema))

    def matching(self, glob: str) -> list[ToolInfo]:
        return [i for n in sorted(self.catalog.tool_routes) if fnmatch.fnmatchcase(n, glob)
                and (i := self.lookup(n)) is not None and i.backend != "gateway"]

    def unavailable(self, backend: str) -> str | None:
        health = self.health.get(backend)
        return None if health is None else health.refusal()

    # -- calls -----------------------------------------------------------------

    async def call(
        self, name: str, arguments: dict[str, Any], *, timeout_s: float | None = None, ctx: CallContext | None = None
    ) -> types.CallToolResult:
        """Call an exposed tool. Raises `UnknownTool`; every other failure is an `isError` result."""
        ctx = ctx or CallContext()
        if timeout_s is not None:
            ctx = replace(ctx, timeout_s=timeout_s)
        own = self._own.get(name)
        if own is not None:
            return await own[1](arguments, ctx)
        route = self.catalog.tool_routes.get(name)
        if route is None:
            raise UnknownTool(name, self.catalog.closest(name))
        problem = self.catalog.argument_errors(name, arguments)
        if problem is not None:
            return error_result(f"invalid arguments for {name}: {problem}")
        refusal = self.health[route.backend].refusal()
        if refusal is not None:
            return await self._degraded(route, arguments, ctx, refusal)
        return await self._through_chain(ToolCall(name, route.backend, route.original, arguments, ctx))

    async def _through_chain(self, call: ToolCall) -> types.CallToolResult:
        """The middleware chain, contained: a middleware that raises costs this call, not the session."""
        try:
            return await self._chain(call)
        except (MCPError, GatewayError):  # a backend's own JSON-RPC error, or the gateway's: passed on as such
            raise
        except Exception as exc:
            log.exception("middleware raised on %s", call.tool)
            return error_result(f"{call.tool} failed in the gateway's middleware: {type(exc).__name__}: {exc}")

    async def _degraded(self, route: Route, arguments: dict[str, Any], ctx: CallContext,
                        refusal: str) -> types.CallToolResult:
        tried: list[str] = []
        for fb in self._fallbacks.get(route.name, []):
            target = self.catalog.tool_routes.get(fb.tool)
            if target is None or self.health[target.backend].refusal() is not None:
                tried.append(fb.tool)
                continue
            args = {fb.renames.get(k, k): v for k, v in arguments.items()}
            result = await self._through_chain(ToolCall(fb.tool, target.backend, target.original, args, ctx))
            if not result.is_error:
                result = self._as_primary_output(route.name, fb.tool, result)
            notice = f"[degraded] {refusal}; served by {fb.tool} instead."
            meta = dict(result.meta or {})
            meta[DEGRADED_META] = {"primary": route.name, "backend": route.backend, "reason": refusal,
                                   "served_by": fb.tool}
            return result.model_copy(update={
                "content": [types.TextContent(type="text", text=notice), *result.content], "meta": meta})
        others = [f.tool for f in self._fallbacks.get(route.name, []) if f.tool not in tried]
        hint = f" Fallbacks: {', '.join(others)}." if others else " No fallback is configured for it."
        if tried:
            hint = f" Its fallbacks ({', '.join(tried)}) are unavailable too."
        self.metrics.call(route.backend, route.name, "unavailable", 0.0)
        return error_result(f"{route.name} cannot be served: {refusal}.{hint}")

    def _as_primary_output(self, primary: str, fallback: str, result: types.CallToolResult) -> types.CallToolResult:
        """A fallback's result, shaped to the output schema clients know for the primary tool.

        Clients check `structuredContent` against the primary's `outputSchema`. A
        schema of one required string property (`{"content": "..."}`, common for
        text tools) is filled from the fallback's text; any other mismatch is an
        error naming it, rather than a result the client would reject.
        """
        problem = self.catalog.output_errors(primary, result.structured_content)
        if problem is None:
            return result
        tool = self.catalog.tool(primary)
        schema = tool.output_schema if tool is not None else None
        required = (schema or {}).get("required") or []
        if len(required) == 1 and (schema or {}).get("properties", {}).get(required[0], {}).get("type") == "string":
            texts = [c.text for c in result.content if isinstance(c, types.TextContent)]
            shaped = result.model_copy(update={"structured_content": {required[0]: "\n".join(texts)}})
            if self.catalog.output_errors(primary, shaped.structured_content) is None:
                return shaped
        return error_result(f"{primary}: its fallback {fallback} answered in a shape that does not fit "
                            f"{primary}'s output schema ({problem})")

    async def _to_backend(self, call: ToolCall) -> types.CallToolResult:
        backend = self.backends[call.backend]
        health = self.health[call.backend]
        timeout = call.context.timeout_s or self.configs[call.backend].call_timeout_s or self.call_timeout_s
        started = time.perf_counter()
        outcome = "ok"
        try:
            async with self._limit:
                with anyio.fail_after(timeout):
                    result = await backend.call_tool(call.original, call.arguments, call.context)
            outcome = "error" if result.is_error else "ok"
            return result
        except TimeoutError:
            outcome = "timeout"
            return error_result(f"{call.tool} timed out after {timeout:g}s; backend {call.backend!r} was told "
                                "to cancel it")
        except BackendTimeout as exc:
            outcome = "timeout"
            return error_result(f"{call.tool}: {exc}")
        except BackendError as exc:
            outcome = "unavailable"
            return error_result(f"{call.tool} failed: {exc}")
        finally:
            seconds = time.perf_counter() - started
            health.record(outcome in ("ok", "error"), seconds)
            self.metrics.call(call.backend, call.tool, outcome, seconds)
