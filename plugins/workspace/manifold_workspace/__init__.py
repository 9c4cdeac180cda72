"""Manifold backend type `workspace`: file operations confined to one root directory."""

from manifold_workspace.backend import WorkspaceBackend, WorkspaceConfig

__all__ = ["WorkspaceBackend", "WorkspaceConfig"]
