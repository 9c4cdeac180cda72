"""One supervisor per backend: connect, list, monitor, and reconnect with backoff.

Each runs in a task of its own, so backends start concurrently and one that
hangs or crashes never holds up another. A backend is (re)opened inside a
cancel scope whose deadline is its start timeout; once connected, the monitor
checks it every health interval. It is reopened when its connection is lost,
when `HUNG_AFTER` checks in a row fail, or when it asks to be (`list_changed`
re-reads the listing without reconnecting).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from gateway.backends import Backend, BackendListener
from gateway.catalog import Listing
from gateway.health import Health

log = logging.getLogger("manifold.health")

BACKOFF_START_S = 0.5
"""The first restart delay unless MANIFOLD_RESTART_BACKOFF_S says otherwise; doubles to BACKOFF_MAX_S."""
BACKOFF_MAX_S = 30.0
HUNG_AFTER = 3
"""Failed checks in a row after which a connected backend is taken for hung and reopened."""

OnListing = Callable[[Backend, Listing | None], Awaitable[None]]


async def read_listing(backend: Backend) -> Listing:
    """Every list of the backend, read concurrently."""
    tools: list[Any] = []
    resources: list[Any] = []
    templates: list[Any] = []
    prompts: list[Any] = []

    async def get(target: list[Any], fn: Callable[[], Awaitable[Sequence[Any]]]) -> None:
        target.extend(await fn())

    async with anyio.create_task_group() as tg:
        tg.start_soon(get, tools, backend.list_tools)
        tg.start_soon(get, resources, backend.list_resources)
        tg.start_soon(get, templates, backend.list_resource_templates)
        tg.start_soon(get, prompts, backend.list_prompts)
    return Listing(tuple(tools), tuple(resources), tuple(templates), tuple(prompts))


class Supervisor(BackendListener):
    """Keeps one backend connected and its listing current. It is also the backend's listener."""

    def __init__(self, backend: Backend, health: Health, on_listing: OnListing, interval_s: float,
                 on_resource_updated: Callable[[str, str], Awaitable[None]] | None = None,
                 backoff_start_s: float = BACKOFF_START_S) -> None:
        self.backend = backend
        self.backoff_start_s = backoff_start_s
        self.health = health
        self._on_listing = on_listing
        self._on_resource_updated = on_resource_updated
        self.interval_s = interval_s
        self.first_attempt = anyio.Event()
        self._wake = anyio.Event()
        self._lost: str | None = None
        self._stale = False
        self._was_connected = False
        backend.listener = self

    async def list_changed(self, backend: Backend) -> None:
        self._stale = True
        self._wake.set()

    async def connection_lost(self, backend: Backend, why: str) -> None:
        self._lost = why
        self.health.lost(why)
        self._wake.set()

    async def resource_updated(self, backend: Backend, uri: str) -> None:
        if self._on_resource_updated is not None:
            await self._on_resource_updated(backend.name, uri)

    async def run(self) -> None:
        """Run until cancelled."""
        delay = self.backoff_start_s
        while True:
            self._was_connected = False
            why = await self._connected_once()
            if self._was_connected:
                delay = self.backoff_start_s
            self.health.lost(why)
            self.first_attempt.set()
            await self._on_listing(self.backend, None)
            log.warning("backend %s unavailable: %s; retrying in %.1fs", self.backend.name, why, delay)
            await anyio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(BACKOFF_MAX_S, delay * 2)
            self.health.restarts += 1

    async def _connected_once(self) -> str:
        """Open the backend, serve it until it is lost or hung; return why it ended."""
        timeout = self.backend.config.timeout_s
        self._lost = None
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
                async with self.backend.open():
                    listing = await read_listing(self.backend)
                    scope.deadline = math.inf
                    self._was_connected = True
                    self.health.connected(len(listing.tools))
                    await self._on_listing(self.backend, listing)
                    self.first_attempt.set()
                    log.info("backend %s %s with %d tools", self.backend.name, self.health.state.value,
                             len(listing.tools))
                    return await self._monitor()
            if scope.cancelled_caught:
                return f"did not start within {timeout:g}s"
            return "closed"
        except Exception as exc:
            describe = getattr(self.backend, "describe_failure", None)
            return describe(exc) if describe else f"{type(exc).__name__}: {exc}"

    async def _monitor(self) -> str:
        failed_checks = 0
        while True:
            with anyio.move_on_after(self.interval_s):
                await self._wake.wait()
            self._wake = anyio.Event()
            if self._lost is not None:
                return self._lost
            if self._stale:
                self._stale = False
                listing = await read_listing(self.backend)
                self.health.connected(len(listing.tools))
                await self._on_listing(self.backend, listing)
                continue
            limit = max(1.0, min(10.0, self.interval_s))
            try:
                with anyio.fail_after(limit):
                    await self.backend.check()
                failed_checks = 0
                self.health.check_passed()
            except Exception as exc:
                failed_checks += 1
                self.health.check_failed(f"no answer within {limit:g}s" if isinstance(exc, TimeoutError)
                                         else f"{type(exc).__name__}: {exc}")
                if failed_checks >= HUNG_AFTER:
                    return f"{failed_checks} health checks failed in a row; restarting"
