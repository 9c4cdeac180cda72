"""The database backend on SQLite: tools, read-only enforcement, transactions, resources, registration."""

from __future__ import annotations

import json
import sqlite3
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from manifold_database import DatabaseBackend, DatabaseConfig
from manifold_database import plugin as database_plugin
from pydantic import ValidationError

from gateway.backends import Backend, CallContext
from gateway.local import ToolError


async def call(backend: DatabaseBackend, tool: str, **arguments: Any) -> types.CallToolResult:
    return await backend.call_tool(tool, arguments, CallContext())


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "test.db"


@pytest.fixture
async def db(db_path: Path):
    backend = DatabaseBackend("db", DatabaseConfig(path=db_path, max_rows=3))
    async with backend.open():
        sql = "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body BLOB)"
        ok = await call(backend, "execute", sql=sql)
        assert not ok.is_error, text(ok)
        yield backend


async def test_open_creates_the_file_and_its_folders(db: DatabaseBackend, db_path: Path) -> None:
    assert await anyio.Path(db_path).is_file()
    await db.check()


async def test_tools_and_their_annotations(db: DatabaseBackend) -> None:
    tools = {t.name: t for t in await db.list_tools()}
    assert set(tools) == {"tables", "describe", "query", "execute"}
    for name in ("tables", "describe", "query"):
        assert tools[name].annotations is not None and tools[name].annotations.read_only_hint
    assert tools["execute"].annotations is not None and tools["execute"].annotations.destructive_hint
    assert tools["query"].input_schema["required"] == ["sql"]
    assert tools["query"].input_schema["properties"]["params"]["type"] == "array"


async def test_execute_then_query_returns_rows_and_a_table(db: DatabaseBackend) -> None:
    sql = "INSERT INTO notes (title) VALUES (?), (?)"
    inserted = await call(db, "execute", sql=sql, params=["a", "b\nc"])
    assert not inserted.is_error, text(inserted)
    assert inserted.structured_content == {"columns": [], "rows": [], "truncated": False, "rowcount": 2}

    sql = "SELECT id, title, body FROM notes WHERE id >= ? ORDER BY id"
    result = await call(db, "query", sql=sql, params=[1])
    assert not result.is_error, text(result)
    assert result.structured_content == {
        "columns": ["id", "title", "body"],
        "rows": [{"id": 1, "title": "a", "body": None}, {"id": 2, "title": "b\nc", "body": None}],
        "truncated": False,
    }
    assert text(result).splitlines() == [
        "id | title | body",
        "---+-------+-----",
        "1  | a     | NULL",
        "2  | b\\nc  | NULL",
        "(2 rows)",
    ]


async def test_query_stops_at_max_rows_and_says_so(db: DatabaseBackend) -> None:
    await call(db, "execute", sql="INSERT INTO notes (title) VALUES ('1'), ('2'), ('3'), ('4'), ('5')")
    result = await call(db, "query", sql="SELECT title FROM notes ORDER BY id")
    assert result.structured_content is not None
    assert result.structured_content["truncated"] is True
    assert [r["title"] for r in result.structured_content["rows"]] == ["1", "2", "3"]
    assert "truncated" in text(result)


async def test_values_become_json(db: DatabaseBackend) -> None:
    result = await call(db, "query", sql="SELECT x'00ff' AS blob, 1.5 AS real, 1 AS same, 2 AS same")
    assert result.structured_content is not None
    assert result.structured_content["columns"] == ["blob", "real", "same", "same_2"]
    assert result.structured_content["rows"] == [{"blob": "AP8=", "real": 1.5, "same": 1, "same_2": 2}]


async def test_execute_returns_the_rows_of_returning(db: DatabaseBackend) -> None:
    sql = "INSERT INTO notes (title) VALUES (?) RETURNING id, title"
    result = await call(db, "execute", sql=sql, params=["x"])
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["rows"] == [{"id": 1, "title": "x"}]
    assert result.structured_content["rowcount"] == 1


async def test_sql_errors_are_error_results_with_the_databases_message(db: DatabaseBackend) -> None:
    result = await call(db, "query", sql="SELECT * FROM missing")
    assert result.is_error
    assert text(result) == "SQLite: no such table: missing"


async def test_a_failed_execute_writes_nothing(db: DatabaseBackend) -> None:
    await call(db, "execute", sql="INSERT INTO notes (id, title) VALUES (1, 'kept')")
    failed = await call(db, "execute", sql="INSERT INTO notes (id, title) VALUES (2, 'new'), (1, 'dup')")
    assert failed.is_error and "UNIQUE constraint failed" in text(failed)
    two = await call(db, "execute", sql="DELETE FROM notes; DROP TABLE notes")
    assert two.is_error and "one statement" in text(two)
    rows = await call(db, "query", sql="SELECT id, title FROM notes")
    assert rows.structured_content is not None
    assert rows.structured_content["rows"] == [{"id": 1, "title": "kept"}]


async def test_query_cannot_write(db: DatabaseBackend) -> None:
    for sql in (
        "INSERT INTO notes (title) VALUES ('sneaky')",
        "DROP TABLE notes",
        "PRAGMA query_only = OFF; INSERT INTO notes (title) VALUES ('sneaky')",
    ):
        result = await call(db, "query", sql=sql)
        assert result.is_error, sql
    count = await call(db, "query", sql="SELECT count(*) AS n FROM notes")
    assert count.structured_content is not None
    assert count.structured_content["rows"] == [{"n": 0}]


async def test_read_only_backend_refuses_execute_and_the_file_refuses_writes(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    backend = DatabaseBackend("ro", DatabaseConfig(path=db_path, read_only=True))
    async with backend.open():
        refused = await call(backend, "execute", sql="INSERT INTO t VALUES (1)")
        assert refused.is_error and "read-only" in text(refused)
        # Past the tool's refusal, the database itself (mode=ro) refuses the write.
        with pytest.raises(ToolError, match="readonly database"):
            await backend.engine.execute("INSERT INTO t VALUES (1)", (), 10)


async def test_read_only_needs_an_existing_file(tmp_path: Path) -> None:
    backend = DatabaseBackend("ro", DatabaseConfig(path=tmp_path / "absent.db", read_only=True))
    with pytest.raises(FileNotFoundError, match=r"absent\.db"):
        async with backend.open():
            pass
    assert not (tmp_path / "absent.db").exists()


async def test_tables_and_describe(db: DatabaseBackend) -> None:
    await call(db, "execute", sql="CREATE VIEW titles AS SELECT title FROM notes")
    tables = await call(db, "tables")
    assert tables.structured_content == {
        "tables": [{"name": "notes", "type": "table"}, {"name": "titles", "type": "view"}]
    }
    described = await call(db, "describe", table="notes")
    assert described.structured_content == {
        "table": "notes",
        "columns": [
            {"name": "id", "type": "INTEGER", "nullable": False, "default": None, "primary_key": True},
            {"name": "title", "type": "TEXT", "nullable": False, "default": None, "primary_key": False},
            {"name": "body", "type": "BLOB", "nullable": True, "default": None, "primary_key": False},
        ],
    }
    missing = await call(db, "describe", table="nope")
    assert missing.is_error and "nope" in text(missing)


async def test_table_schemas_are_resources(db: DatabaseBackend) -> None:
    resources = await db.list_resources()
    assert [(r.uri, r.name) for r in resources] == [("database://db/notes", "notes")]
    templates = await db.list_resource_templates()
    assert templates[0].uri_template == "database://db/{table}"
    read = await db.read_resource("database://db/notes")
    content = read.contents[0]
    assert isinstance(content, types.TextResourceContents)
    assert [c["name"] for c in json.loads(content.text)["columns"]] == ["id", "title", "body"]
    for uri in ("database://db/nope", "database://other/notes", "database://db/"):
        with pytest.raises(ValueError):
            await db.read_resource(uri)


async def test_a_cancelled_query_is_interrupted(db: DatabaseBackend) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    with anyio.move_on_after(0.05) as scope:
        await call(db, "query", sql=endless)
    assert scope.cancelled_caught
    still = await call(db, "query", sql="SELECT 1 AS one")
    assert still.structured_content is not None and still.structured_content["rows"] == [{"one": 1}]


def test_config_needs_exactly_one_database() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        DatabaseConfig()
    with pytest.raises(ValidationError, match="exactly one"):
        DatabaseConfig(path=Path("a.db"), url="postgresql://localhost/db")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unsupported scheme"):
        DatabaseConfig(url="mysql://localhost/db")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="extra"):
        DatabaseConfig.model_validate({"path": "a.db", "pth": "typo"})


def test_the_plugin_registers_the_backend_type() -> None:
    registered: list[type[Backend]] = []
    database_plugin.register_backend_types(registered.append)
    assert registered == [DatabaseBackend]
    assert DatabaseBackend.type_name == "database"
    (found,) = [ep for ep in entry_points(group="manifold") if ep.name == "database"]
    assert found.load() is database_plugin
