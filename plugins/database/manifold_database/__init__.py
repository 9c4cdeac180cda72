"""Manifold backend type `database`: SQL tools and table schemas for SQLite or PostgreSQL."""

from manifold_database.backend import DatabaseBackend, DatabaseConfig

__all__ = ["DatabaseBackend", "DatabaseConfig"]
