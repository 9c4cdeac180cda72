"""What the database backend needs from an engine (SQLite or PostgreSQL), and what it gets back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from manifold_database.rows import Rows

Param = str | int | float | bool | None
"""A statement parameter: a JSON scalar."""


@dataclass(frozen=True)
class TableInfo:
    name: str
    type: str  # "table" or "view"


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    nullable: bool
    default: str | None
    primary_key: bool


@dataclass(frozen=True)
class TableSchema:
    table: str
    columns: list[ColumnInfo]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Engine(Protocol):
    """One open database. Driver errors come out as `ToolError` carrying the database's message."""

    dialect: str
    """Shown in messages and descriptions: `SQLite`, `PostgreSQL`."""

    placeholder: str
    """How a statement marks a parameter: `?` or `%s`."""

    async def ping(self) -> None: ...

    async def tables(self) -> list[TableInfo]: ...

    async def describe(self, table: str) -> TableSchema | None:
        """The table's columns, or None when there is no such table or view."""
        ...

    async def query(self, sql: str, params: Sequence[Param], max_rows: int) -> Rows:
        """Run one statement in a read-only transaction."""
        ...

    async def execute(self, sql: str, params: Sequence[Param], max_rows: int) -> Rows:
        """Run one statement in its own transaction: committed, or rolled back on error."""
        ...
