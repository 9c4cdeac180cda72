"""The database backend on PostgreSQL, against a throwaway cluster of the machine's PostgreSQL binaries.

Skipped when psycopg or the binaries (initdb, pg_ctl) are missing. As root the
cluster runs as the `postgres` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import mcp_types as types
import pytest

psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")

from manifold_database import DatabaseBackend, DatabaseConfig  # noqa: E402

from gateway.backends import CallContext  # noqa: E402
from gateway.local import ToolError  # noqa: E402


def _bin_dir() -> str | None:
    for candidate in [*sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True), None]:
        initdb = shutil.which("initdb", path=candidate)
        if initdb and shutil.which("pg_ctl", path=candidate):
            return os.path.dirname(initdb)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql")
    run_as: list[str] = []
    base = tempfile.mkdtemp(prefix="manifold-pg-")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(base, "data"), _free_port()
    pg_ctl = [*run_as, os.path.join(bin_dir, "pg_ctl"), "-D", data, "-w"]
    try:
        initdb = [os.path.join(bin_dir, "initdb"), "-D", data, "-A", "trust", "-U", "manifold", "--no-sync"]
        subprocess.run([*run_as, *initdb, "-E", "UTF8"], check=True, capture_output=True)
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = os.path.join(base, "log")
        subprocess.run([*pg_ctl, "-l", log, "-o", options, "start"], check=True, capture_output=True)
        try:
            yield f"postgresql://manifold@127.0.0.1:{port}"
        finally:
            subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=True, capture_output=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def db_url(server_url: str, request: pytest.FixtureRequest) -> str:
    """A fresh database for each test."""
    name = "t_" + request.node.name.removeprefix("test_")[:50]
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"


@pytest.fixture
async def db(db_url: str):
    backend = DatabaseBackend("pg", DatabaseConfig(url=db_url, max_rows=3))  # type: ignore[arg-type]
    async with backend.open():
        created = await call(backend, "execute", sql="CREATE TABLE notes (id serial PRIMARY KEY, title text NOT NULL)")
        assert not created.is_error, text(created)
        yield backend


async def call(backend: DatabaseBackend, tool: str, **arguments: Any) -> types.CallToolResult:
    return await backend.call_tool(tool, arguments, CallContext())


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def rows(result: types.CallToolResult) -> list[dict[str, Any]]:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return list(result.structured_content["rows"])


async def test_execute_then_query(db: DatabaseBackend) -> None:
    inserted = await call(
        db, "execute", sql="INSERT INTO notes (title) VALUES (%s), (%s) RETURNING id", params=["a", "b"]
    )
    assert rows(inserted) == [{"id": 1}, {"id": 2}]
    assert inserted.structured_content is not None and inserted.structured_content["rowcount"] == 2
    result = await call(db, "query", sql="SELECT id, title, now() > '2000-01-01' AS recent FROM notes ORDER BY id")
    assert rows(result) == [{"id": 1, "title": "a", "recent": True}, {"id": 2, "title": "b", "recent": True}]
    assert text(result).splitlines()[0] == "id | title | recent"


async def test_values_become_json(db: DatabaseBackend) -> None:
    result = await call(
        db, "query",
        sql="SELECT 1.50::numeric AS n, '\\x00ff'::bytea AS b, DATE '2024-02-29' AS d, '{\"k\": [1]}'::jsonb AS j",
    )
    assert rows(result) == [{"n": "1.50", "b": "AP8=", "d": "2024-02-29", "j": {"k": [1]}}]


async def test_max_rows(db: DatabaseBackend) -> None:
    result = await call(db, "query", sql="SELECT generate_series(1, 10) AS n")
    assert rows(result) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert result.structured_content is not None and result.structured_content["truncated"] is True


async def test_errors_carry_the_databases_message(db: DatabaseBackend) -> None:
    result = await call(db, "query", sql="SELECT * FROM missing")
    assert result.is_error
    assert text(result).startswith('PostgreSQL: relation "missing" does not exist')


async def test_a_failed_execute_writes_nothing(db: DatabaseBackend) -> None:
    # Two statements, one transaction: the second fails, so the first is rolled back too.
    failed = await call(
        db, "execute", sql="INSERT INTO notes (title) VALUES ('half'); INSERT INTO notes (title) VALUES (NULL)"
    )
    assert failed.is_error and "null value" in text(failed)
    assert rows(await call(db, "query", sql="SELECT count(*) AS n FROM notes")) == [{"n": 0}]


async def test_query_runs_read_only(db: DatabaseBackend) -> None:
    for sql in ("INSERT INTO notes (title) VALUES ('sneaky')", "COMMIT; INSERT INTO notes (title) VALUES ('sneaky')"):
        result = await call(db, "query", sql=sql)
        assert result.is_error, sql
    assert "read-only transaction" in text(await call(db, "query", sql="DROP TABLE notes"))
    assert rows(await call(db, "query", sql="SELECT count(*) AS n FROM notes")) == [{"n": 0}]


async def test_read_only_backend(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
    backend = DatabaseBackend("ro", DatabaseConfig(url=db_url, read_only=True))  # type: ignore[arg-type]
    async with backend.open():
        refused = await call(backend, "execute", sql="INSERT INTO t VALUES (1)")
        assert refused.is_error and "read-only" in text(refused)
        # Past the tool's refusal, the server itself refuses (default_transaction_read_only).
        with pytest.raises(ToolError, match="read-only transaction"):
            await backend.engine.execute("INSERT INTO t VALUES (1)", (), 10)


async def test_tables_describe_and_resources(db: DatabaseBackend) -> None:
    await call(db, "execute", sql="CREATE SCHEMA extra; CREATE TABLE extra.things (name text DEFAULT 'x')")
    await call(db, "execute", sql="CREATE VIEW titles AS SELECT title FROM notes")
    assert (await call(db, "tables")).structured_content == {
        "tables": [
            {"name": "notes", "type": "table"},
            {"name": "titles", "type": "view"},
            {"name": "extra.things", "type": "table"},
        ]
    }
    described = await call(db, "describe", table="notes")
    assert described.structured_content is not None
    assert described.structured_content["columns"] == [
        {
            "name": "id",
            "type": "integer",
            "nullable": False,
            "default": "nextval('notes_id_seq'::regclass)",
            "primary_key": True,
        },
        {"name": "title", "type": "text", "nullable": False, "default": None, "primary_key": False},
    ]
    other = await call(db, "describe", table="extra.things")
    assert other.structured_content is not None
    assert other.structured_content["columns"][0]["default"] == "'x'::text"
    assert [r.uri for r in await db.list_resources()] == [
        "database://pg/notes",
        "database://pg/titles",
        "database://pg/extra.things",
    ]
    read = await db.read_resource("database://pg/extra.things")
    assert isinstance(read.contents[0], types.TextResourceContents)


async def test_check_and_an_unreachable_server(db: DatabaseBackend) -> None:
    await db.check()
    port = _free_port()
    down = DatabaseBackend("down", DatabaseConfig(url=f"postgresql://manifold@127.0.0.1:{port}/x", timeout_s=1))  # type: ignore[arg-type]
    with pytest.raises(psycopg.errors.Error):
        async with down.open():
            pass
