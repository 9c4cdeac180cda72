"""Registers the `database` backend type with Manifold (entry point `manifold: database`)."""

from __future__ import annotations

from collections.abc import Callable

from gateway import Backend, hookimpl
from manifold_database.backend import DatabaseBackend


@hookimpl
def register_backend_types(register: Callable[[type[Backend]], None]) -> None:
    register(DatabaseBackend)
