"""Through a real `manifold serve` process: the demo notes API, and requests as the API received them."""

from __future__ import annotations

import json
from pathlib import Path

import mcp_types as types
from manifold_openapi.demo import document as demo_document
from openapi_servers import Recorder

from gateway.testing import connected, served

DEMO_DOCUMENT = Path(__file__).resolve().parent.parent / "manifold_openapi" / "demo-openapi.json"


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def test_the_shipped_document_is_the_one_the_demo_reads() -> None:
    assert json.loads(DEMO_DOCUMENT.read_text()) == demo_document()


async def test_the_demo_notes_api_through_a_served_gateway(demo: str, tmp_path: Path) -> None:
    config = f'[backends.notes]\ntype = "openapi"\nspec = "{demo}/openapi.json"\n'
    with served(config, tmp_path) as gw:
        assert gw.backend("notes")["state"] == "healthy"
        assert gw.backend("notes")["tools"] == 4
        async with gw.client() as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"notes__listNotes", "notes__createNote", "notes__getNote", "notes__deleteNote"} <= names
            created = await client.call_tool("notes__createNote",
                                             {"body": {"title": "served", "tags": ["e2e-served"]}})
            assert not created.is_error, text(created)
            assert created.structured_content is not None
            note_id = created.structured_content["id"]
            listed = await client.call_tool("notes__listNotes", {"tag": "e2e-served"})
            assert listed.structured_content == {"notes": [created.structured_content], "total": 1}
            got = await client.call_tool("notes__getNote", {"note_id": note_id})
            assert got.structured_content == created.structured_content
            deleted = await client.call_tool("notes__deleteNote", {"note_id": note_id})
            assert not deleted.is_error and text(deleted) == "HTTP 204 No Content"
            gone = await client.call_tool("notes__getNote", {"note_id": note_id})
            assert gone.is_error
            assert text(gone) == f'HTTP 404 Not Found from GET /notes/{note_id}:\n{{"detail":"no note {note_id}"}}'


async def test_the_demo_in_process_from_the_shipped_file(demo: str) -> None:
    config = {"backends": {"notes": {"type": "openapi", "spec": str(DEMO_DOCUMENT), "base_url": demo}}}
    async with connected(config) as client:
        created = await client.call_tool("notes__createNote", {"body": {"title": "file", "body": None}})
        assert created.structured_content is not None, text(created)
        assert created.structured_content["title"] == "file"
        refused = await client.call_tool("notes__createNote", {"body": {"title": ""}})
        assert refused.is_error  # minLength 1: refused by the gateway's schema check


async def test_requests_and_secrets_through_a_served_gateway(recorder: Recorder, tmp_path: Path) -> None:
    config = (
        "[backends.rec]\n"
        'type = "openapi"\n'
        f'spec = "{recorder.url}/openapi.json"\n'
        'bearer_token = "${OA_TEST_TOKEN}"\n'
        "operations.deny = [\"admin.*\"]\n"
    )
    token = "served-secret-0042"
    with served(config, tmp_path, env={"OA_TEST_TOKEN": token}) as gw:
        async with gw.client() as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "rec__getItem" in names and "rec__admin_reset" not in names
            result = await client.call_tool("rec__getItem", {"item_id": "42", "tags": ["a", "b"], "X-Trace": "t9",
                                                             "session": "c1"})
            assert not result.is_error, text(result)
            moved = await client.call_tool("rec__moved", {})
            refused = await client.call_tool("rec__denied", {})
        status = json.dumps(gw.status())
    got = recorder.last("/items/42")
    assert got.query == [("tags", "a"), ("tags", "b")]
    assert got.headers["x-trace"] == "t9" and got.cookies == {"session": "c1"}
    assert got.headers["authorization"] == f"Bearer {token}"
    assert moved.is_error and "HTTP 302" in text(moved)
    assert refused.is_error and token not in text(refused) and "***" in text(refused)
    assert token not in status
    assert token not in gw.log.read_text()
