"""Registers the `workspace` backend type with Manifold (entry point `manifold: workspace`)."""

from __future__ import annotations

from collections.abc import Callable

from gateway import Backend, hookimpl
from manifold_workspace.backend import WorkspaceBackend


@hookimpl
def register_backend_types(register: Callable[[type[Backend]], None]) -> None:
    register(WorkspaceBackend)
