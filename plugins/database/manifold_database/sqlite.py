"""The SQLite engine: the stdlib driver, one connection per call, run in a worker thread.

A connection per call keeps threads from sharing one (sqlite3 connections are
not for concurrent use) and costs little for a local file. Read-only is the
database's own doing, not a keyword filter: a `read_only` backend opens the
file with `mode=ro`, and every `query` runs with `PRAGMA query_only`. A call
that is cancelled (a client's cancel, a timeout) interrupts its statement.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
from anyio import to_thread

from gateway import ToolError
from manifold_database.engine import ColumnInfo, Param, TableInfo, TableSchema
from manifold_database.rows import Rows

T = TypeVar("T")

_TABLES = (
    "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') "
    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
)
_COLUMNS = 'SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)'
_EXISTS = "SELECT 1 FROM sqlite_schema WHERE type IN ('table', 'view') AND name = ?"


def _fetch(cursor: sqlite3.Cursor, max_rows: int, *, write: bool = False) -> Rows:
    """The rows of a statement; for a write all of them (its rowcount is known only then) and the rowcount."""
    columns = [d[0] for d in cursor.description or ()]
    fetched: list[Any] = []
    if columns:
        fetched = cursor.fetchall() if write else cursor.fetchmany(max_rows + 1)
    rowcount = cursor.rowcount if write and cursor.rowcount >= 0 else None
    return Rows.build(columns, fetched, max_rows, rowcount)


class SqliteEngine:
    dialect = "SQLite"
    placeholder = "?"

    def __init__(self, path: Path, read_only: bool) -> None:
        self.path = path
        self.read_only = read_only

    def _connect(self, query_only: bool) -> sqlite3.Connection:
        if self.read_only:
            target, uri = f"{self.path.as_uri()}?mode=ro", True
        else:
            target, uri = str(self.path), False
        # isolation_level=None: no implicit transactions; execute() says BEGIN/COMMIT itself,
        # so that DDL is transactional too.
        conn = sqlite3.connect(target, uri=uri, isolation_level=None, check_same_thread=False)
        if query_only or self.read_only:
            conn.execute("PRAGMA query_only = ON")
        return conn

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, query_only: bool) -> T:
        try:
            conn = await to_thread.run_sync(self._connect, query_only)

            def run_and_close() -> T:
                with contextlib.closing(conn):
                    return work(conn)

            try:
                return await to_thread.run_sync(run_and_close, abandon_on_cancel=True)
            except anyio.get_cancelled_exc_class():
                conn.interrupt()  # the worker sees "interrupted", rolls back and closes
                raise
        except sqlite3.Error as exc:
            raise ToolError(f"SQLite: {exc}") from exc

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchall(), query_only=True)

    async def tables(self) -> list[TableInfo]:
        rows = await self._run(lambda conn: conn.execute(_TABLES).fetchall(), query_only=True)
        return [TableInfo(name, kind) for name, kind in rows]

    async def describe(self, table: str) -> TableSchema | None:
        def work(conn: sqlite3.Connection) -> TableSchema | None:
            if not conn.execute(_EXISTS, (table,)).fetchall():
                return None
            columns = [
                ColumnInfo(name, type_ or "", not notnull and not pk, default, bool(pk))
                for name, type_, notnull, default, pk in conn.execute(_COLUMNS, (table,))
            ]
            return TableSchema(table, columns)

        return await self._run(work, query_only=True)

    async def query(self, sql: str, params: Sequence[Param], max_rows: int) -> Rows:
        return await self._run(lambda conn: _fetch(conn.execute(sql, params), max_rows), query_only=True)

    async def execute(self, sql: str, params: Sequence[Param], max_rows: int) -> Rows:
        def work(conn: sqlite3.Connection) -> Rows:
            conn.execute("BEGIN")
            try:
                cursor = conn.execute(sql, params)
                rows = _fetch(cursor, max_rows, write=True)
                cursor.close()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return rows

        return await self._run(work, query_only=False)


@contextlib.asynccontextmanager
async def open_sqlite(path: Path, read_only: bool) -> AsyncIterator[SqliteEngine]:
    """Open the file at `path`, creating it and its folders unless `read_only` (then it must exist)."""
    file = await (await anyio.Path(path).expanduser()).absolute()
    if read_only:
        if not await file.is_file():
            raise FileNotFoundError(f"SQLite file {file} does not exist; read_only opens existing files only")
    else:
        await file.parent.mkdir(parents=True, exist_ok=True)
    engine = SqliteEngine(Path(file), read_only)
    await engine.ping()
    yield engine
