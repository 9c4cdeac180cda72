"""Registers the `database` backend type with Manifold (entry point `manifold: database`)."""

from __future__ import annotations

from collections.abc import Callable

from gateway.backends import Backend
from gateway.hookspecs import hookimpl
from manifold_database.backend import DatabaseBackend


@hookimpl
def register_backend_types(register: Callable[[type[Backend]], None]) -> None:
    register(DatabaseBackend)
