"""The PostgreSQL engine: psycopg 3, async, with a small pool of connections.

Needs the `postgres` extra (`pip install 'manifold-database[postgres]'`).
Read-only is the server's doing: a `read_only` backend's connections start
with `default_transaction_read_only = on`, and every `query` runs in a
transaction opened with `SET TRANSACTION READ ONLY`, as one prepared statement
(the extended protocol refuses `COMMIT; ...`, so no query can end that transaction).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from gateway import ToolError
from manifold_database.engine import ColumnInfo, Param, TableInfo, TableSchema
from manifold_database.rows import Rows

POOL_SIZE = 4

_TABLES = """
SELECT CASE WHEN table_schema = current_schema() THEN table_name
            ELSE table_schema || '.' || table_name END AS name,
       CASE table_type WHEN 'VIEW' THEN 'view' ELSE 'table' END AS type
FROM information_schema.tables
WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY table_schema <> current_schema(), 1
"""

_COLUMNS = """
SELECT c.column_name AS name, c.data_type AS type, c.is_nullable = 'YES' AS nullable,
       c.column_default AS "default",
       EXISTS (SELECT 1 FROM information_schema.table_constraints t
               JOIN information_schema.key_column_usage k
                 ON k.constraint_name = t.constraint_name AND k.table_schema = t.table_schema
                AND k.table_name = t.table_name
               WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = c.table_schema
                 AND t.table_name = c.table_name AND k.column_name = c.column_name) AS primary_key
FROM information_schema.columns c
WHERE c.table_schema = COALESCE(%s, current_schema()) AND c.table_name = %s
ORDER BY c.ordinal_position
"""


async def _fetch(cursor: psycopg.AsyncCursor[Any], max_rows: int, rowcount: int | None = None) -> Rows:
    if cursor.description is None:
        return Rows([], [], False, rowcount)
    columns = [d.name for d in cursor.description]
    return Rows.build(columns, await cursor.fetchmany(max_rows + 1), max_rows, rowcount)


def _params(params: Sequence[Param]) -> list[Param] | None:
    # No parameters: the statement goes as written (a literal % needs no escaping).
    return list(params) or None


class PostgresEngine:
    dialect = "PostgreSQL"
    placeholder = "%s"

    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]]) -> None:
        self.pool = pool

    async def ping(self) -> None:
        await self.query("SELECT 1", (), 1)

    async def tables(self) -> list[TableInfo]:
        rows = await self.query(_TABLES, (), 100_000)
        return [TableInfo(**r) for r in rows.rows]

    async def describe(self, table: str) -> TableSchema | None:
        schema, _, name = table.rpartition(".")
        rows = await self.query(_COLUMNS, (schema or None, name), 100_000)
        if not rows.rows:
            return None
        return TableSchema(table, [ColumnInfo(**r) for r in rows.rows])

    async def query(self, sql: str, params: Sequence[Param], max_rows: int) -> Rows:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute("SET TRANSACTION READ ONLY")
                return await _fetch(await conn.execute(sql, _params(params), prepare=True), max_rows)
        except psycopg.Error as exc:
            raise ToolError(f"PostgreSQL: {exc}") from exc

    async def execute(self, sql: str, params: Sequence[Param], max_rows: int) -> Rows:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cursor = await conn.execute(sql, _params(params))
                return await _fetch(cursor, max_rows, cursor.rowcount if cursor.rowcount >= 0 else None)
        except psycopg.Error as exc:
            raise ToolError(f"PostgreSQL: {exc}") from exc


@contextlib.asynccontextmanager
async def open_postgres(url: str, read_only: bool, timeout_s: float) -> AsyncIterator[PostgresEngine]:
    """Connect a pool to `url` (a libpq URL); wait up to `timeout_s` for its first connection."""
    kwargs: dict[str, Any] = {"autocommit": True}  # transactions are explicit, one per call
    if read_only:
        kwargs["options"] = "-c default_transaction_read_only=on"
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
        url, min_size=1, max_size=POOL_SIZE, kwargs=kwargs, open=False, timeout=timeout_s
    )
    await pool.open(wait=True, timeout=timeout_s)
    try:
        yield PostgresEngine(pool)
    finally:
        await pool.close()
