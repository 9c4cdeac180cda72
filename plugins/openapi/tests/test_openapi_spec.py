"""Reading OpenAPI documents: tool names, input schemas, $refs, and clear errors for bad documents."""

from __future__ import annotations

import copy
import json
from importlib.metadata import entry_points
from typing import Any

import jsonschema
import pytest
from manifold_openapi import OpenApiBackend, OpenApiConfig, SpecError
from manifold_openapi import plugin as openapi_plugin
from manifold_openapi.demo import document as demo_document
from manifold_openapi.encode import ArgumentError, build_request
from manifold_openapi.spec import parse_document, read_api, tool_name, unique_name
from openapi_servers import RECORDER_DOCUMENT
from pydantic import ValidationError

from gateway import Backend

HERE = "http://api.example.test/v1/openapi.json"


def operations(document: dict[str, Any] = RECORDER_DOCUMENT) -> dict[str, Any]:
    return {op.tool_name: op for op in read_api(document, HERE).operations}


def test_names_come_from_operation_ids_or_method_and_path() -> None:
    assert list(operations()) == [
        "getItem", "replace_item", "deleteItem", "createItem", "get_list", "getText", "failing", "moved",
        "whoAmI", "denied", "submitForm", "admin_reset",
    ]
    assert tool_name(None, "get", "/users/{user_id}/pets") == "get_users_user_id_pets"
    assert tool_name("a.b c/d", "get", "/") == "a_b_c_d"


def test_long_and_clashing_names_are_fitted_deterministically() -> None:
    long = tool_name("x" * 100, "get", "/")
    assert len(long) == 64 and long == tool_name("x" * 100, "get", "/")
    assert long != tool_name("x" * 99 + "y", "get", "/")
    taken: set[str] = set()
    assert [unique_name("a", taken) for _ in range(3)] == ["a", "a_2", "a_3"]
    assert len(unique_name(long, {long})) == 64


def test_parameters_are_properties_and_path_ones_are_required() -> None:
    get_item = operations()["getItem"]
    schema = get_item.input_schema
    assert list(schema["properties"]) == ["item_id", "q", "tags", "limit", "X-Trace", "session"]  # no Accept
    assert schema["required"] == ["item_id", "X-Trace"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["q"] == {"type": "string", "description": "a search"}
    assert schema["properties"]["limit"] == {"type": "integer", "minimum": 1}  # through its $ref
    assert get_item.description == "Get an item\n\nEchoes the request.\n\nHTTP: GET /items/{item_id}"


def test_the_body_is_one_property_with_refs_inlined_and_read_only_fields_left_out() -> None:
    create = operations()["createItem"]
    schema = create.input_schema
    assert list(schema["properties"]) == ["query_body", "body"]  # the query parameter `body` is renamed
    assert schema["required"] == ["body"]
    body = schema["properties"]["body"]
    assert "$ref" not in json.dumps(body)
    assert body["required"] == ["name"] and "id" not in body["properties"]
    assert body["description"] == "the item to create"
    assert body["properties"]["tags"]["items"] == {"type": "string", "enum": ["red", "blue"]}
    assert body["properties"]["parent"] == {"description": "(recursive: Item)"}
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    assert validator.is_valid({"body": {"name": "a", "price": 1, "tags": ["red"], "parent": {"name": "p"}}})
    assert not validator.is_valid({"body": {"name": "a", "price": 0}})
    assert not validator.is_valid({"body": {"name": "a", "tags": ["green"]}})


def test_openapi_3_0_keywords_become_json_schema() -> None:
    document = copy.deepcopy(demo_document())
    schemas = document["components"]["schemas"]
    schemas["Note"]["properties"]["rating"] = {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                                               "nullable": True}
    body = operations(document)["createNote"].input_schema["properties"]["body"]
    assert body["properties"]["body"] == {"type": ["string", "null"]}
    assert body["properties"]["rating"] == {"type": ["number", "null"], "exclusiveMinimum": 0}
    jsonschema.Draft202012Validator.check_schema(body)


def test_multipart_operations_are_skipped_and_said_so() -> None:
    api = read_api(RECORDER_DOCUMENT, HERE)
    assert api.skipped == ("POST /upload: multipart request bodies (multipart/form-data) are not supported",)


def test_the_base_url_is_the_first_server_resolved_against_the_document() -> None:
    def base(servers: list[dict[str, Any]] | None, location: str = HERE) -> str | None:
        document = {"openapi": "3.0.0", "paths": {}, **({"servers": servers} if servers is not None else {})}
        return read_api(document, location).base_url

    assert base([{"url": "https://a.test/api"}, {"url": "https://b.test"}]) == "https://a.test/api"
    assert base([{"url": "/api"}]) == "http://api.example.test/api"
    assert base(None) == "http://api.example.test/"
    assert base([{"url": "https://{region}.a.test", "variables": {"region": {"default": "eu"}}}]) == "https://eu.a.test"
    assert base([{"url": "/api"}], "/tmp/openapi.json") is None


def test_yaml_documents_are_read() -> None:
    yaml_text = "openapi: 3.0.0\npaths:\n  /ping:\n    get:\n      operationId: ping\n      responses: {}\n"
    assert [op.tool_name for op in read_api(parse_document(yaml_text, "x.yaml"), "x.yaml").operations] == ["ping"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"swagger": "2.0", "paths": {}}, "only OpenAPI 3.x documents are read, this one says swagger 2.0"),
        ({"openapi": "3.0.0", "paths": []}, "`paths` is not an object"),
        ({"openapi": "3.0.0", "paths": {"/a": {"get": {"parameters": [{"$ref": "other.json#/P"}]}}}},
         "paths./a.get.parameters[0]: $ref 'other.json#/P' points outside the document"),
        ({"openapi": "3.0.0", "paths": {"/a": {"get": {"parameters": [{"$ref": "#/components/parameters/P"}]}}}},
         "$ref '#/components/parameters/P' points at nothing"),
        ({"openapi": "3.0.0", "paths": {"/a/{id}": {"get": {}}}},
         "paths./a/{id}.get: path parameter(s) id not declared"),
        ({"openapi": "3.0.0", "paths": {"/a": {"get": {"parameters": [{"in": "query"}]}}}}, "has no name"),
    ],
)
def test_bad_documents_raise_a_spec_error_saying_where(document: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        read_api(document, "api.json")
    assert str(caught.value).startswith("api.json: ")
    assert message in str(caught.value)


def test_text_that_is_no_document_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="top level is not an object"):
        parse_document("just words", "a.txt")
    with pytest.raises(SpecError, match="neither JSON nor YAML"):
        parse_document("{ unclosed: [", "a.txt")


def test_arguments_are_encoded_by_location_and_style() -> None:
    get_item = operations()["getItem"]
    request = build_request(get_item, {"item_id": "a b/c", "q": "x&y", "tags": ["t1", "t2"], "limit": 5,
                                       "X-Trace": "tr", "session": "s1"})
    assert request.path == "/items/a%20b%2Fc"
    assert request.query == [("q", "x&y"), ("tags", "t1"), ("tags", "t2"), ("limit", "5")]
    assert request.headers == {"X-Trace": "tr", "Cookie": "session=s1"}
    with pytest.raises(ArgumentError, match="missing required argument 'X-Trace'"):
        build_request(get_item, {"item_id": "1"})
    with pytest.raises(ArgumentError, match="unknown argument"):
        build_request(get_item, {"item_id": "1", "X-Trace": "t", "nope": 1})


def test_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="spec"):
        OpenApiConfig.model_validate({})
    with pytest.raises(ValidationError, match="unsupported scheme 'ftp'"):
        OpenApiConfig(spec="ftp://a.test/openapi.json")
    with pytest.raises(ValidationError, match="http:// or https://"):
        OpenApiConfig(spec="a.json", base_url="a.test")
    with pytest.raises(ValidationError, match="extra"):
        OpenApiConfig.model_validate({"spec": "a.json", "operation": {"allow": ["x"]}})
    config = OpenApiConfig.model_validate({"spec": "a.json", "bearer_token": "s3cret", "operations": {"deny": ["a*"]}})
    assert "s3cret" not in repr(config) and config.operations.deny == ["a*"]


def test_the_plugin_registers_the_backend_type() -> None:
    registered: list[type[Backend]] = []
    openapi_plugin.register_backend_types(registered.append)
    assert registered == [OpenApiBackend]
    assert OpenApiBackend.type_name == "openapi"
    (found,) = [ep for ep in entry_points(group="manifold") if ep.name == "openapi"]
    assert found.load() is openapi_plugin
