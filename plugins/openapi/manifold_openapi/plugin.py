"""Registers the `openapi` backend type with Manifold (entry point `manifold: openapi`)."""

from __future__ import annotations

from collections.abc import Callable

from gateway import Backend, hookimpl
from manifold_openapi.backend import OpenApiBackend


@hookimpl
def register_backend_types(register: Callable[[type[Backend]], None]) -> None:
    register(OpenApiBackend)
