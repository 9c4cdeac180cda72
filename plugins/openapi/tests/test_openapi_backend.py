"""The openapi backend in an in-process gateway, calling a real HTTP server that records what it received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import yaml
from mcp import MCPError
from openapi_servers import Recorder

from gateway.testing import connected, free_port


def backend(recorder: Recorder, **extra: Any) -> dict[str, Any]:
    return {"backends": {"rec": {"type": "openapi", "spec": f"{recorder.url}/openapi.json", **extra}}}


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def status_of(client: Any, name: str) -> dict[str, Any]:
    result = await client.call_tool("gateway__status", {})
    return next(b for b in result.structured_content["backends"] if b["name"] == name)


async def test_every_operation_is_a_tool_with_schema_description_and_annotations(recorder: Recorder) -> None:
    async with connected(backend(recorder)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools if t.name.startswith("rec__")}
    assert set(tools) == {f"rec__{n}" for n in (
        "getItem", "replace_item", "deleteItem", "createItem", "get_list", "getText", "failing", "moved",
        "whoAmI", "denied", "submitForm", "admin_reset")}
    get_item = tools["rec__getItem"]
    assert get_item.input_schema["required"] == ["item_id", "X-Trace"]
    assert get_item.description is not None and get_item.description.startswith("Get an item\n\nEchoes")
    assert get_item.annotations is not None and get_item.annotations.read_only_hint is True
    assert get_item.annotations.title == "Get an item"
    put = tools["rec__replace_item"].annotations
    assert put is not None and put.idempotent_hint is True and not put.destructive_hint and not put.read_only_hint
    delete = tools["rec__deleteItem"].annotations
    assert delete is not None and delete.idempotent_hint is True and delete.destructive_hint is True
    post = tools["rec__createItem"].annotations
    assert post is not None and post.read_only_hint is None and post.idempotent_hint is None


async def test_a_call_sends_path_query_header_and_cookie_parameters(recorder: Recorder) -> None:
    arguments = {"item_id": "a b/c", "q": "x&y", "tags": ["t1", "t2"], "limit": 5, "X-Trace": "trace-1",
                 "session": "s1"}
    async with connected(backend(recorder)) as client:
        result = await client.call_tool("rec__getItem", arguments)
    assert not result.is_error, text(result)
    got = recorder.last("/items/a%20b%2Fc")
    assert got.method == "GET"
    assert got.query == [("q", "x&y"), ("tags", "t1"), ("tags", "t2"), ("limit", "5")]
    assert got.headers["x-trace"] == "trace-1"
    assert got.cookies == {"session": "s1"}
    assert got.headers["user-agent"].startswith("manifold-openapi/")
    assert "authorization" not in got.headers


async def test_a_json_body_is_sent_and_a_json_answer_is_structured_content(recorder: Recorder) -> None:
    item = {"name": "lamp", "price": 9.5, "tags": ["red"]}
    async with connected(backend(recorder)) as client:
        result = await client.call_tool("rec__createItem", {"body": item, "query_body": "q"})
    assert not result.is_error, text(result)
    got = recorder.last("/items")
    assert got.method == "POST" and got.headers["content-type"] == "application/json"
    assert got.query == [("body", "q")]
    assert json.loads(got.body) == item
    assert result.structured_content == {"method": "POST", "path": "/items", "query": [["body", "q"]],
                                         "body": got.body.decode()}
    assert json.loads(text(result)) == result.structured_content


async def test_arguments_that_break_the_schema_are_refused_before_any_request(recorder: Recorder) -> None:
    async with connected(backend(recorder)) as client:
        missing = await client.call_tool("rec__getItem", {"item_id": "1"})
        wrong = await client.call_tool("rec__createItem", {"body": {"name": "x", "tags": ["green"]}})
    assert missing.is_error and "X-Trace" in text(missing)
    assert wrong.is_error and "green" in text(wrong)
    assert recorder.received == []


async def test_a_form_body_is_sent_form_encoded(recorder: Recorder) -> None:
    async with connected(backend(recorder)) as client:
        result = await client.call_tool("rec__submitForm", {"body": {"a": "x y", "n": 3}})
    assert not result.is_error, text(result)
    got = recorder.last("/form")
    assert got.headers["content-type"] == "application/x-www-form-urlencoded"
    assert got.body == b"a=x+y&n=3"


async def test_other_answers_become_text_or_wrapped_structured_content(recorder: Recorder) -> None:
    async with connected(backend(recorder)) as client:
        array = await client.call_tool("rec__get_list", {})
        plain = await client.call_tool("rec__getText", {})
        empty = await client.call_tool("rec__deleteItem", {"item_id": "7"})
    assert array.structured_content == {"result": [1, 2, 3]}
    assert plain.structured_content is None and text(plain) == "plain words"
    assert not empty.is_error and text(empty) == "HTTP 204 No Content"
    assert recorder.last("/items/7").method == "DELETE"


async def test_a_non_2xx_answer_is_an_error_result_with_status_and_a_bounded_excerpt(recorder: Recorder) -> None:
    async with connected(backend(recorder, error_excerpt_chars=100)) as client:
        result = await client.call_tool("rec__failing", {})
    assert result.is_error
    first, excerpt = text(result).split("\n", 1)
    assert first == "HTTP 500 Internal Server Error from GET /fail:"
    assert excerpt == "E" * 100 + "…"
    assert result.structured_content is not None and result.structured_content["status"] == 500


async def test_redirects_are_not_followed_unless_configured(recorder: Recorder) -> None:
    async with connected(backend(recorder)) as client:
        result = await client.call_tool("rec__moved", {})
    assert result.is_error
    assert text(result).startswith("HTTP 302 Found from GET /moved (redirect to /text not followed")
    assert [r.raw_path for r in recorder.received] == ["/moved"]
    async with connected(backend(recorder, follow_redirects=True)) as client:
        followed = await client.call_tool("rec__moved", {})
    assert not followed.is_error and text(followed) == "plain words"
    assert recorder.last("/text").method == "GET"


async def test_credentials_go_with_each_request_and_never_into_results(recorder: Recorder) -> None:
    config = backend(recorder, bearer_token="tok-123", api_key="key-456", api_key_name="api_key", api_key_in="query",
                     headers={"X-Extra": "extra-789"})
    async with connected(config) as client:
        ok = await client.call_tool("rec__whoAmI", {})
        refused = await client.call_tool("rec__denied", {})
    got = recorder.last("/secure")
    assert got.query == [("api_key", "key-456")]
    assert got.headers["authorization"] == "Bearer tok-123"
    assert got.headers["x-extra"] == "extra-789"
    assert not ok.is_error, text(ok)
    assert refused.is_error
    assert text(refused).endswith("credentials Bearer *** refused") and "tok-123" not in text(refused)


async def test_an_api_key_header(recorder: Recorder) -> None:
    async with connected(backend(recorder, api_key="key-456")) as client:
        await client.call_tool("rec__whoAmI", {})
    assert recorder.last("/secure").headers["x-api-key"] == "key-456"


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        ({"allow": ["get*"]}, {"getItem", "getText", "get_list"}),  # get_list: no operationId, so its tool name
        ({"deny": ["admin.*", "*Item", "get*", "submit*"]},  # on the operationId as written: admin.reset
         {"replace_item", "failing", "moved", "whoAmI", "denied"}),
        ({"allow": ["*Item"], "deny": ["delete*"]}, {"getItem", "createItem"}),
    ],
)
async def test_operations_allow_and_deny(recorder: Recorder, operations: dict[str, list[str]],
                                         expected: set[str]) -> None:
    async with connected(backend(recorder, operations=operations)) as client:
        names = {t.name.removeprefix("rec__") for t in (await client.list_tools()).tools if t.name.startswith("rec__")}
        assert names == expected
        if "admin_reset" not in names:
            with pytest.raises(MCPError, match="unknown tool 'rec__admin_reset'"):
                await client.call_tool("rec__admin_reset", {})
    assert not any(r.raw_path == "/admin/reset" for r in recorder.received)


async def test_a_spec_from_a_file_json_or_yaml_with_base_url(recorder: Recorder, tmp_path: Path) -> None:
    document = recorder.document()
    del document["servers"]
    (tmp_path / "api.json").write_text(json.dumps(document))
    (tmp_path / "api.yaml").write_text(yaml.safe_dump(document))
    for name in ("api.json", "api.yaml"):
        config = {"backends": {"f": {"type": "openapi", "spec": str(tmp_path / name), "base_url": recorder.url}}}
        async with connected(config) as client:
            result = await client.call_tool("f__getText", {})
        assert text(result) == "plain words", name


async def test_a_file_spec_names_its_server(recorder: Recorder, tmp_path: Path) -> None:
    (tmp_path / "api.json").write_text(json.dumps(recorder.document()))
    async with connected({"backends": {"f": {"type": "openapi", "spec": str(tmp_path / "api.json")}}}) as client:
        result = await client.call_tool("f__get_list", {})
    assert result.structured_content == {"result": [1, 2, 3]}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{tmp}/absent.json", "{tmp}/absent.json: no such file"),
        ("{tmp}/swagger.json", "only OpenAPI 3.x documents are read, this one says swagger 2.0"),
        ("{tmp}/noserver.json", "the document names no absolute server URL; set base_url"),
        ("{url}/nothing-here.json", "{url}/nothing-here.json: fetching the document answered HTTP 404"),
        ("http://127.0.0.1:{port}/openapi.json", "could not fetch the document: ConnectError"),
    ],
)
async def test_a_bad_spec_leaves_the_backend_unavailable_with_a_clear_error(
        recorder: Recorder, tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "swagger.json").write_text(json.dumps({"swagger": "2.0", "paths": {}}))
    (tmp_path / "noserver.json").write_text(json.dumps({"openapi": "3.0.0", "paths": {}}))
    values = {"tmp": str(tmp_path), "url": recorder.url, "port": str(free_port())}
    config = {"backends": {"bad": {"type": "openapi", "spec": spec.format(**values)}}}
    async with connected(config) as client:
        status = await status_of(client, "bad")
        assert not [t for t in (await client.list_tools()).tools if t.name.startswith("bad__")]
    assert status["state"] == "unavailable"
    assert message.format(**values) in status["last_error"]
    assert not status["last_error"].startswith("SpecError")


async def test_an_api_that_does_not_answer_gives_an_error_result(recorder: Recorder, tmp_path: Path) -> None:
    (tmp_path / "api.json").write_text(json.dumps(recorder.document()))
    down = f"http://127.0.0.1:{free_port()}"
    config = {"backends": {"f": {"type": "openapi", "spec": str(tmp_path / "api.json"), "base_url": down,
                                 "bearer_token": "never-shown"}}}
    async with connected(config) as client:
        result = await client.call_tool("f__getText", {})
    assert result.is_error
    assert text(result).startswith("GET /text failed: ConnectError")
    assert "never-shown" not in text(result)
