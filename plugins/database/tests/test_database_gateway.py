"""The database backend through a gateway: in-process (`gateway.testing.connected`) and through a
real `manifold serve` over HTTP (`gateway.testing.served`), on an SQLite file on disk."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from gateway.testing import connected, served


@asynccontextmanager
async def in_process(table: dict[str, Any], tmp_path: Path) -> AsyncIterator[Client]:
    async with connected({"backends": {"db": {"type": "database", **table}}}) as client:
        yield client


@asynccontextmanager
async def over_http(table: dict[str, Any], tmp_path: Path) -> AsyncIterator[Client]:
    keys = "".join(f'{k} = {"true" if v is True else "false" if v is False else repr(v)}\n'.replace("'", '"')
                   for k, v in table.items())
    with served(f'[backends.db]\ntype = "database"\n{keys}', tmp_path) as gw:
        async with gw.client() as client:
            yield client


@pytest.fixture(params=[in_process, over_http], ids=["in-process", "served"])
def via(request: pytest.FixtureRequest) -> Any:
    return request.param


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_execute_then_query_through_the_gateway(via: Any, tmp_path: Path) -> None:
    path = tmp_path / "data" / "shop.db"
    async with via({"path": str(path)}, tmp_path) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"db__tables", "db__describe", "db__query", "db__execute"} <= names
        made = await client.call_tool("db__execute", {"sql": "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"})
        assert not made.is_error, text(made)
        added = await client.call_tool("db__execute", {"sql": "INSERT INTO items (name) VALUES (?), (?)",
                                                       "params": ["apple", "pear"]})
        assert not added.is_error, text(added)
        rows = await client.call_tool("db__query", {"sql": "SELECT name FROM items ORDER BY id"})
        assert not rows.is_error, text(rows)
        assert (rows.structured_content or {})["rows"] == [{"name": "apple"}, {"name": "pear"}]
        bad = await client.call_tool("db__query", {"sql": "SELECT nope FROM items"})
        assert bad.is_error and "no such column: nope" in text(bad)
    with sqlite3.connect(path) as db:  # really on disk
        assert db.execute("SELECT count(*) FROM items").fetchone() == (2,)


async def test_a_read_only_database_refuses_writes_through_the_gateway(via: Any, tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
    async with via({"path": str(path), "read_only": True}, tmp_path) as client:
        refused = await client.call_tool("db__execute", {"sql": "INSERT INTO t VALUES (1)"})
        assert refused.is_error
        sneaky = await client.call_tool("db__query", {"sql": "DELETE FROM t RETURNING x"})
        assert sneaky.is_error
        tables = await client.call_tool("db__tables", {})
        assert "t" in text(tables)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)
