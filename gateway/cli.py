"""The `manifold` command: serve, check, plugins, tools, call, status."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from rich.console import Console
from rich.live import Live
from rich.table import Table

from gateway import plugins, settings
from gateway.app import Gateway
from gateway.errors import ConfigError, PluginError, UnknownTool

err = Console(stderr=True)
out = Console()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code = args.func(args)
    except (ConfigError, PluginError) as exc:
        err.print(f"[bold red]manifold: {exc}[/]", highlight=False, soft_wrap=True)
        code = 2
    except BaseExceptionGroup as group:  # raised inside a task group (serve): report it as itself
        config_errors, _ = group.split(ConfigError)
        if config_errors is None:
            raise
        err.print(f"[bold red]manifold: {_leaf(config_errors)}[/]", highlight=False, soft_wrap=True)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


def _leaf(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manifold", description="One MCP endpoint in front of many backends.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", type=Path, help="config file (TOML, or mcpServers JSON)")
        p.add_argument("--env-file", type=Path, help="env file (default .env, if present)")
        p.set_defaults(func=func)
        return p

    serve = command("serve", "Serve the gateway over streamable HTTP (or stdio).", _serve)
    serve.add_argument("--stdio", action="store_true", help="serve MCP over stdin/stdout instead of HTTP")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    command("check", "Validate the configuration and exit.", _check)
    for name, help_text, func in (("plugins", "List the plugins found.", _plugins),
                                  ("tools", "List the aggregated tools with each backend's health.", _tools)):
        command(name, help_text, func).add_argument("--json", action="store_true")
    call = command("call", "Call one tool through the configured backends and print the result.", _call)
    call.add_argument("tool")
    call.add_argument("--args", default="{}", help="the arguments, as a JSON object")
    status = command("status", "Show a running gateway's backend health.", _status)
    status.add_argument("--url", default="http://127.0.0.1:8765", help="the gateway's base URL")
    status.add_argument("--json", action="store_true")
    return parser


def _load(args: argparse.Namespace, **flags: Any) -> tuple[settings.Config, plugins.Registry]:
    registry = plugins.load()
    flags["config"] = args.config
    config = settings.load(flags, env_file=args.env_file, backend_types=registry.backend_types)
    _setup_logging(config.settings)
    return config, registry


def _setup_logging(s: settings.Settings) -> None:
    fmt = ('{"time": "%(asctime)s", "level": "%(levelname)s", "logger": "%(name)s", "message": %(message)r}'
           if s.log_format == "json" else "%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.basicConfig(level=s.log_level.upper(), format=fmt, stream=sys.stderr, force=True)
    for noisy in ("httpx", "httpx2", "mcp", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


async def _start(gateway: Gateway) -> None:
    """Wait for the first start attempts, showing each backend's state on a terminal."""
    if not err.is_terminal:
        await gateway.started()
        return

    def table() -> Table:
        t = Table(title="starting backends", show_edge=False)
        for col in ("backend", "state", "reason"):
            t.add_column(col)
        for h in gateway.health.values():
            t.add_row(h.backend, h.state.value, h.reason)
        return t

    with Live(table(), console=err, transient=True, refresh_per_second=8) as live:
        async with anyio.create_task_group() as tg:
            async def refresh() -> None:
                while True:
                    live.update(table())
                    await anyio.sleep(0.125)

            tg.start_soon(refresh)
            await gateway.started()
            tg.cancel_scope.cancel()


def _serve(args: argparse.Namespace) -> int:
    config, registry = _load(args, host=args.host, port=args.port)
    gateway = Gateway(config, registry)
    anyio.run(_serve_stdio if args.stdio else _serve_http, gateway)
    return 0


SHUTDOWN_GRACE_S = 3
"""How long open client connections (streams) may take to close when the gateway stops."""


async def _serve_http(gateway: Gateway) -> None:
    import uvicorn  # heavy; only `serve` needs it

    from gateway.http import build_app

    class Server(uvicorn.Server):
        """uvicorn's server, with an event set once it has been asked to stop (its main loop ended)."""

        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.stopping = anyio.Event()
            self.stopped = anyio.Event()

        async def main_loop(self) -> None:
            await super().main_loop()
            self.stopping.set()

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            try:  # a stop asked for during start-up skips the main loop
                await super().serve(sockets)
            finally:
                self.stopping.set()
                self.stopped.set()

    app = build_app(gateway)
    s = gateway.settings
    server = Server(uvicorn.Config(app, host=s.host, port=s.port, log_level="warning", lifespan="on",
                                   timeout_graceful_shutdown=SHUTDOWN_GRACE_S))

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True

    # uvicorn re-raises the signal it stopped for once it is done; under the default SIGTERM
    # action that ends the process before gateway.run() has stopped the backends (and their
    # children). With this handler in place the re-raised signal just asks to stop again.
    signal.signal(signal.SIGTERM, stop)
    async with gateway.run():
        await _start(gateway)  # start-up errors (a name collision) stop us before we listen
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            logging.getLogger("manifold").info("serving MCP at http://%s:%d%s", s.host, s.port, s.path)
            await server.stopping.wait()
            with anyio.move_on_after(SHUTDOWN_GRACE_S * 2):  # its own shutdown: connections, then lifespan
                await server.stopped.wait()
            tg.cancel_scope.cancel()


async def _serve_stdio(gateway: Gateway) -> None:
    from mcp.server.stdio import stdio_server

    async with gateway.run():
        await gateway.started()
        server = gateway.mcp.server
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


def _check(args: argparse.Namespace) -> int:
    config, registry = _load(args)
    Gateway(config, registry)  # builds every part without starting any: route definitions are checked here
    out.print(f"{config.source}: ok, {len(config.backends)} backend(s), {len(config.routes)} route(s)")
    for name, cfg in config.backends.items():
        out.print(f"  {name}: type {cfg.type}" + ("" if cfg.enabled else " (disabled)"))
    return 0


def _plugins(args: argparse.Namespace) -> int:
    registry = plugins.load()
    if args.json:
        rows = [{"name": p.name, "distribution": p.distribution, "version": p.version, "hooks": list(p.hooks),
                 "error": p.error} for p in registry.plugins]
        print(json.dumps(rows, indent=2))
        return 0
    t = Table("plugin", "distribution", "version", "hooks", "status")
    for p in registry.plugins:
        t.add_row(p.name, p.distribution, p.version, ", ".join(p.hooks),
                  f"[red]disabled: {p.error}[/]" if p.error else "[green]ok[/]")
    out.print(t)
    return 0


def _tools(args: argparse.Namespace) -> int:
    config, registry = _load(args)
    gateway = Gateway(config, registry)

    async def collect() -> list[dict[str, Any]]:
        async with gateway.run():
            await _start(gateway)
            cat = gateway.router.catalog
            return [{"name": t.name, "backend": cat.tool_routes[t.name].backend,
                     "state": gateway.health[b].state.value if (b := cat.tool_routes[t.name].backend) in
                     gateway.health else "healthy", "description": (t.description or "").split("\n")[0][:80]}
                    for t in cat.tools]

    rows = anyio.run(collect)
    if args.json:
        print(json.dumps({"tools": rows, "backends": gateway.status()["backends"]}, indent=2))
        return 0
    t = Table("tool", "backend", "state", "description")
    for r in rows:
        t.add_row(r["name"], r["backend"], r["state"], r["description"])
    out.print(t)
    for h in gateway.health.values():
        if h.state.value not in ("healthy",):
            err.print(f"[yellow]backend {h.backend}: {h.state.value}: {h.reason}[/]", highlight=False)
    return 0


def _call(args: argparse.Namespace) -> int:
    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        err.print(f"manifold call: --args is not JSON: {exc}")
        return 2
    if not isinstance(arguments, dict):
        err.print("manifold call: --args must be a JSON object")
        return 2
    config, registry = _load(args)
    gateway = Gateway(config, registry)

    async def call() -> types.CallToolResult | UnknownTool:
        async with gateway.run():
            await _start(gateway)
            try:  # inside the gateway's task group an exception would come out wrapped in a group
                return await gateway.router.call(args.tool, arguments)
            except UnknownTool as exc:
                return exc

    result = anyio.run(call)
    if isinstance(result, UnknownTool):
        err.print(f"manifold call: {result}", highlight=False, soft_wrap=True)
        return 2
    print(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2))
    return 1 if result.is_error else 0


def _status(args: argparse.Namespace) -> int:
    try:
        response = httpx2.get(args.url.rstrip("/") + "/status", timeout=10)
        response.raise_for_status()
    except httpx2.HTTPError as exc:
        err.print(f"manifold status: cannot read {args.url}/status: {exc}")
        return 1
    status = response.json()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    t = Table("backend", "type", "state", "tools", "latency ms", "restarts", "since", "last error",
              title=f"manifold {status.get('version', '?')}")
    for b in status["backends"]:
        t.add_row(b["name"], b["type"], b["state"], str(b["tools"]), str(b["latency_ms"] or "-"),
                  str(b["restarts"]), b["since"], b["last_error"] or "")
    out.print(t)
    return 0
