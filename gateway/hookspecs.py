"""Every hook a Manifold plugin may implement. Specification only, no logic.

Hooks run at start-up, never per request. Each registering hook receives a
`register` function and calls it once per thing it adds; a duplicate name is a
start-up error naming both plugins. A hook that raises disables its plugin
(reported by name); the gateway serves the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import pluggy

from gateway.backends import Backend
from gateway.middleware import Middleware
from gateway.patterns.base import Pattern

if TYPE_CHECKING:  # annotation only: the gateway object is handed to plugins, never imported by them
    from gateway.app import Gateway

PROJECT = "manifold"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backend_types(register: Callable[[type[Backend]], None]) -> None:
    """Add backend types (the `type = "..."` of a `[backends.x]` table).

    :param register: call ``register(BackendClass)`` once per type; the class
        has a unique ``type_name`` and a ``Config`` model for its table.

    Called once at start-up, before the config file's backends are validated.
    """


@hookspec
def register_backends(register: Callable[[Backend], None]) -> None:
    """Add ready-made backends that need no config table.

    :param register: call ``register(backend_instance)`` once per backend; its
        ``name`` is its namespace and must not collide with a configured backend.

    Called once at start-up, after the configured backends are built.
    """


@hookspec
def register_patterns(register: Callable[[Pattern], None]) -> None:
    """Add coordination patterns for ``gateway__coordinate`` and ``[routes.*]``.

    :param register: call ``register(pattern)`` once per pattern; ``pattern.name``
        is the value of a plan's ``pattern`` key.

    Called once at start-up. The built-in patterns come through this hook too.
    """


@hookspec
def register_middleware(register: Callable[[Middleware], None]) -> None:
    """Add middleware around every ``tools/call``.

    :param register: call ``register(middleware)``; a middleware is
        ``async (call: ToolCall, call_next) -> CallToolResult``. Registration
        order is call order, outermost first.

    Called once at start-up; the chain is built once from what was registered.
    """


@hookspec
def lifespan(gateway: Gateway) -> AbstractAsyncContextManager[None] | None:
    """Run code around the gateway's whole run (open a pool, start a task).

    :param gateway: the running gateway (read its ``settings`` and ``backends``).
    :return: an async context manager entered after the backends start and
        exited at shutdown, or None.

    Called once at start-up.
    """
