"""The composition root: builds every part from a validated config and runs them together."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import anyio
import mcp_types as types
from pydantic import ValidationError

from gateway import plugins
from gateway.backends import Backend, BackendConfig, CallContext
from gateway.errors import ConfigError, Problem
from gateway.health import Health, State
from gateway.metrics import Metrics
from gateway.patterns.coordinator import Coordinator, RouteConfig
from gateway.routing import OwnTool, Router
from gateway.server import GatewayServer
from gateway.settings import Config
from gateway.supervisor import Supervisor

log = logging.getLogger("manifold")

VERSION = "0.1.0"
STATUS_TOOL = "gateway__status"


class Gateway:
    """One gateway: its backends, their supervisors, the router and the MCP server."""

    def __init__(self, config: Config, registry: plugins.Registry) -> None:
        self.config = config
        self.settings = config.settings
        self.registry = registry
        self.backends: dict[str, Backend] = {}
        configs: dict[str, BackendConfig] = {}
        for name, cfg in config.backends.items():
            self.backends[name] = registry.backend_types[cfg.type or ""](name, cfg)
            configs[name] = cfg
        for backend in registry.backends:
            if backend.name == "gateway":
                raise ConfigError([Problem(config.source, "backends.gateway",
                                           "a plugin registers a ready-made backend named 'gateway', which is reserved",
                                           "rename the plugin's backend")])
            if backend.name in self.backends:
                raise ConfigError([Problem(config.source, f"backends.{backend.name}",
                                           "a plugin registers a ready-made backend of the same name",
                                           "rename the configured backend")])
            self.backends[backend.name] = backend
            configs[backend.name] = backend.config
        self.health = {
            name: Health(name, getattr(b, "type_name", "?"))
            for name, b in self.backends.items()
        }
        for name, cfg in configs.items():
            if not cfg.enabled:
                self.health[name].set(State.DISABLED, "enabled = false")
        self.metrics = Metrics()
        s = self.settings
        self.router = Router(
            self.backends, configs, self.health, separator=s.separator, call_timeout_s=s.call_timeout_s,
            hide_unavailable=s.hide_unavailable, middleware=registry.middleware, metrics=self.metrics,
            max_concurrent_calls=s.max_concurrent_calls,
        )
        self.mcp = GatewayServer(self.router, version=VERSION)
        self.supervisors = [
            Supervisor(b, self.health[n], self.router.set_listing, s.health_interval_s,
                       self.mcp.notify_resource_updated, backoff_start_s=s.restart_backoff_s)
            for n, b in self.backends.items() if configs[n].enabled
        ]
        self._add_own_tools()
        self.router.rebuild()

    def _add_own_tools(self) -> None:
        status_tool = types.Tool(
            name=STATUS_TOOL,
            description="Health of every backend: state, reason, tools, latency, restarts, since when.",
            input_schema={"type": "object", "properties": {}, "additionalProperties": False},
            annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True),
        )
        self.router.add_own_tool(status_tool, self._status_tool)
        self.coordinator = Coordinator(self.registry.patterns)
        self.routes: dict[str, RouteConfig] = {}
        if self.registry.patterns:
            self.router.add_own_tool(self.coordinator.tool(), self._run_plan)
        problems: list[Problem] = []
        for name, table in self.config.routes.items():
            where = f"routes.{name}"
            try:
                route = RouteConfig.model_validate(table)
            except ValidationError as exc:
                problems += [Problem(self.config.source, f"{where}.{_loc(e['loc'])}".rstrip("."), e["msg"],
                                     "see the README's Patterns section for a route's keys")
                             for e in exc.errors()]
                continue
            shape = self.coordinator.validate_route(name, route, None)
            if name in self.router.own_tools or name.startswith(f"gateway{self.settings.separator}"):
                shape.append(f"the name {name!r} is the gateway's own")
            problems += [Problem(self.config.source, where, p, "fix the route's definition") for p in shape]
            if not shape:
                self.routes[name] = route
                self.router.add_own_tool(self.coordinator.route_tool(name, route), self._route_runner(route))
        if problems:
            raise ConfigError(problems)

    async def _run_plan(self, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        return await self.coordinator.run(arguments, self.router, ctx.progress)

    def _route_runner(self, route: RouteConfig) -> OwnTool:
        async def run(arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
            return await self.coordinator.run_route(route, arguments, self.router, ctx.progress)

        return run

    def status(self) -> dict[str, Any]:
        return {"version": VERSION, "backends": [h.as_dict() for h in self.health.values()]}

    async def _status_tool(self, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        status = self.status()
        lines = [f"{b['name']}: {b['state']} ({b['reason']}), {b['tools']} tools" for b in status["backends"]]
        return types.CallToolResult(
            content=[types.TextContent(type="text", text="\n".join(lines) or "no backends")],
            structured_content=status,
        )

    def ready(self) -> bool:
        """Every backend has become healthy or failed its first start attempt."""
        return all(s.first_attempt.is_set() for s in self.supervisors)

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[Gateway]:
        """Start every backend concurrently, and stop them all on exit. Does not wait: see `started`."""
        try:
            async with anyio.create_task_group() as tg:
                try:
                    # The plugins' lifespans (entered by `started`) exit first, while backends still serve.
                    async with contextlib.AsyncExitStack() as stack:
                        self._stack = stack
                        self.mcp.bridge.tasks = tg  # 2026-07-28 calls waiting for client input live here
                        for supervisor in self.supervisors:
                            tg.start_soon(supervisor.run, name=f"supervisor-{supervisor.backend.name}")
                        yield self
                finally:
                    self.mcp.bridge.tasks = None
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # a start-up ConfigError reaches the caller as itself
            config_errors, _ = group.split(ConfigError)
            if config_errors is not None:
                raise config_errors.exceptions[0] from None
            raise

    async def started(self) -> None:
        """Wait for every first start attempt, check what they listed, enter the plugins' lifespans."""
        for supervisor in self.supervisors:
            await supervisor.first_attempt.wait()
        self._check_startup()
        for hook in self.registry.lifespans:
            try:  # a plugin's lifespan that raises costs that plugin, not the gateway
                # pluggy lets an implementation take fewer arguments than the spec names
                takes_gateway = "gateway" in inspect.signature(hook).parameters
                cm = hook(gateway=self) if takes_gateway else cast(Callable[[], Any], hook)()
                if cm is not None:
                    await self._stack.enter_async_context(cm)
            except Exception as exc:
                log.warning("plugin lifespan %s disabled: %s: %s", getattr(hook, "__qualname__", hook),
                            type(exc).__name__, exc)

    def _check_startup(self) -> None:
        problems: list[Problem] = []
        for collision in self.router.catalog.collisions:
            a, b = collision.backends
            problems.append(Problem(
                self.config.source, f"backends.{b}.namespace",
                f"{collision.name!r} is exposed by both backend {a!r} and backend {b!r}",
                "give one of them a namespace (namespace = \"\" exposes names unchanged)",
            ))
        every_backend_up = all(h.state is not State.UNAVAILABLE for h in self.health.values())
        for name, route in self.routes.items():
            for problem in self.coordinator.validate_route(name, route, self.router):
                if every_backend_up:  # else the tool may come with the backend that is down
                    problems.append(Problem(self.config.source, f"routes.{name}", problem,
                                            "name a tool that `manifold tools` lists"))
                else:
                    log.warning("route %s: %s (a backend is down; the route fails until it serves)", name, problem)
        if problems:
            raise ConfigError(problems)
        for name, health in self.health.items():
            if health.state is State.UNAVAILABLE:
                log.warning("backend %s failed to start: %s (the others serve)", name, health.reason)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)
