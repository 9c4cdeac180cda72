"""The `database` backend type: SQL tools, and each table's schema as a resource.

    [backends.db]
    type = "database"
    path = "data/manifold.db"      # SQLite; or url = "postgresql://user@host/db"
    read_only = false
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

import mcp_types as types
from pydantic import Field, SecretStr, model_validator

from gateway import BackendConfig, LocalBackend, ToolError, tool
from manifold_database.engine import Engine, Param, TableSchema
from manifold_database.rows import Rows, render
from manifold_database.sqlite import open_sqlite

SCHEME = "database"
"""Resource URIs are `database://<backend>/<table>`, whichever the engine."""

TableName = Annotated[str, Field(description="table or view name")]
Sql = Annotated[str, Field(description="one SQL statement")]
Params = Annotated[
    Sequence[Param],
    Field(description="values for the statement's placeholders: ? for SQLite, %s for PostgreSQL"),
]


class DatabaseConfig(BackendConfig):
    """`[backends.<name>]` of `type = "database"`: exactly one of `path` and `url`."""

    path: Path | None = Field(default=None, description="SQLite file; created, with its folders, if missing")
    url: SecretStr | None = Field(
        default=None, description="postgresql://user:password@host:port/db (needs the postgres extra)"
    )
    read_only: bool = Field(default=False, description="refuse execute; the database enforces read-only too")
    max_rows: int = Field(default=500, ge=1, description="most rows a query or execute returns")

    @model_validator(mode="after")
    def _one_database(self) -> DatabaseConfig:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path (a SQLite file) or url (postgresql://...)")
        if self.url is not None:
            scheme = self.url.get_secret_value().partition("://")[0]
            if scheme not in ("postgresql", "postgres"):
                raise ValueError(f"url: unsupported scheme {scheme!r}; use postgresql://, or path for SQLite")
        return self


@contextlib.asynccontextmanager
async def open_engine(config: DatabaseConfig) -> AsyncIterator[Engine]:
    if config.url is None:
        assert config.path is not None  # the config's validator saw to it
        async with open_sqlite(config.path, config.read_only) as sqlite:
            yield sqlite
        return
    # Imported here, not at the top: psycopg is an optional extra, needed only for a url.
    try:
        from manifold_database.postgres import open_postgres
    except ImportError as exc:
        raise RuntimeError(
            "url needs psycopg: pip install 'manifold-database[postgres]'"
        ) from exc
    async with open_postgres(config.url.get_secret_value(), config.read_only, config.timeout_s) as postgres:
        yield postgres


def _rows_result(rows: Rows) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=render(rows))], structured_content=rows.as_dict()
    )


class DatabaseBackend(LocalBackend):
    """SQL over one SQLite file or PostgreSQL database."""

    type_name = "database"
    Config = DatabaseConfig
    config: DatabaseConfig

    def __init__(self, name: str, config: DatabaseConfig) -> None:
        super().__init__(name, config)
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise ToolError(f"database backend {self.name!r} is not open")
        return self._engine

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        async with open_engine(self.config) as engine:
            self._engine = engine
            try:
                yield
            finally:
                self._engine = None

    async def check(self) -> None:
        await self.engine.ping()

    @tool(read_only=True)
    async def tables(self) -> dict[str, Any]:
        """List the tables and views, each with its type."""
        found = await self.engine.tables()
        return {"tables": [{"name": t.name, "type": t.type} for t in found]}

    @tool(read_only=True)
    async def describe(self, table: TableName) -> dict[str, Any]:
        """Describe a table's columns: name, type, nullable, default, primary key."""
        return (await self._schema(table)).as_dict()

    @tool(read_only=True)
    async def query(self, sql: Sql, params: Params = ()) -> types.CallToolResult:
        """Run a read-only SQL statement (SELECT ...) and return its rows.

        Runs in a read-only transaction: a statement that writes fails. Returns
        `columns`, `rows` (one object per row) and `truncated` (more rows than max_rows).
        """
        return _rows_result(await self.engine.query(sql, params, self.config.max_rows))

    @tool(destructive=True)
    async def execute(self, sql: Sql, params: Params = ()) -> types.CallToolResult:
        """Run one SQL statement that changes data or schema (INSERT, UPDATE, CREATE ...).

        Runs in its own transaction: committed when it succeeds, rolled back when
        it fails. Returns `rowcount`, and the rows of a RETURNING clause.
        """
        if self.config.read_only:
            raise ToolError(f"database backend {self.name!r} is read-only: execute is refused")
        return _rows_result(await self.engine.execute(sql, params, self.config.max_rows))

    async def _schema(self, table: str) -> TableSchema:
        schema = await self.engine.describe(table)
        if schema is None:
            raise ToolError(f"no table or view named {table!r}; the tables tool lists them")
        return schema

    def _uri(self, table: str) -> str:
        return f"{SCHEME}://{self.name}/{quote(table, safe='')}"

    async def list_resources(self) -> list[types.Resource]:
        return [
            types.Resource(
                uri=self._uri(t.name),
                name=t.name,
                description=f"columns of the {t.type} {t.name}",
                mime_type="application/json",
            )
            for t in await self.engine.tables()
        ]

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        return [
            types.ResourceTemplate(
                uri_template=f"{SCHEME}://{self.name}/{{table}}",
                name="table schema",
                description="columns of one table or view",
                mime_type="application/json",
            )
        ]

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        prefix = f"{SCHEME}://{self.name}/"
        if not uri.startswith(prefix) or len(uri) == len(prefix):
            raise ValueError(f"{uri!r} is not a table of database backend {self.name!r}")
        try:
            schema = await self._schema(unquote(uri[len(prefix) :]))
        except ToolError as exc:
            raise ValueError(str(exc)) from exc
        text = json.dumps(schema.as_dict(), indent=2)
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
        )
