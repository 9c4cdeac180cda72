"""The recorder: a Starlette app that keeps every request as it received it.

It serves an OpenAPI document (`RECORDER_DOCUMENT`, with `servers` set to its
own URL) at /openapi.json describing its own routes; conftest.py runs it on a
loopback socket in a thread of the test process.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

ITEM_ID = {"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}}

RECORDER_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Recorder", "version": "1"},
    "paths": {
        "/items/{item_id}": {
            "parameters": [ITEM_ID],
            "get": {
                "operationId": "getItem",
                "summary": "Get an item",
                "description": "Echoes the request.",
                "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "a search"},
                    {"name": "tags", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                    {"$ref": "#/components/parameters/Limit"},
                    {"name": "X-Trace", "in": "header", "required": True, "schema": {"type": "string"}},
                    {"name": "Accept", "in": "header", "schema": {"type": "string"}},
                    {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "echo"}},
            },
            "put": {
                "operationId": "replace item!",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
                "responses": {"200": {"description": "echo"}},
            },
            "delete": {"operationId": "deleteItem", "responses": {"204": {"description": "gone"}}},
        },
        "/items": {
            "post": {
                "operationId": "createItem",
                "parameters": [{"name": "body", "in": "query", "schema": {"type": "string"}}],
                "requestBody": {"$ref": "#/components/requestBodies/NewItem"},
                "responses": {"201": {"description": "echo"}},
            },
        },
        "/list": {"get": {"summary": "A JSON array", "responses": {"200": {"description": "numbers"}}}},
        "/text": {"get": {"operationId": "getText", "responses": {"200": {"description": "plain text"}}}},
        "/fail": {"get": {"operationId": "failing", "responses": {"500": {"description": "always"}}}},
        "/moved": {"get": {"operationId": "moved", "responses": {"302": {"description": "to /text"}}}},
        "/secure": {"get": {"operationId": "whoAmI", "responses": {"200": {"description": "echo"}}}},
        "/denied": {"get": {"operationId": "denied", "responses": {"403": {"description": "always"}}}},
        "/form": {
            "post": {
                "operationId": "submitForm",
                "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "properties": {"a": {"type": "string"}, "n": {"type": "integer"}}}}}},
                "responses": {"201": {"description": "echo"}},
            },
        },
        "/upload": {
            "post": {
                "operationId": "upload",
                "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object"}}}},
                "responses": {"201": {"description": "echo"}},
            },
        },
        "/admin/reset": {"post": {"operationId": "admin.reset", "responses": {"201": {"description": "echo"}}}},
    },
    "components": {
        "parameters": {
            "Limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        },
        "requestBodies": {
            "NewItem": {"required": True, "description": "the item to create",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
        },
        "schemas": {
            "Item": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {
                    "id": {"type": "integer", "readOnly": True},
                    "name": {"type": "string"},
                    "price": {"type": "number", "exclusiveMinimum": 0},
                    "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                    "parent": {"$ref": "#/components/schemas/Item"},
                },
            },
            "Tag": {"type": "string", "enum": ["red", "blue"]},
        },
    },
}


@dataclass(frozen=True)
class Received:
    """One request as the server received it."""

    method: str
    raw_path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    cookies: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    url: str
    received: list[Received] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        document = copy.deepcopy(RECORDER_DOCUMENT)
        document["servers"] = [{"url": self.url}]
        return document

    def last(self, raw_path: str) -> Received:
        """The latest request to this path (the gateway's HEAD health probes go to / and are not kept)."""
        found = [r for r in self.received if r.raw_path == raw_path]
        assert found, f"no request to {raw_path}; got {[r.raw_path for r in self.received]}"
        return found[-1]


def recorder_app(recorder: Recorder) -> Starlette:
    async def handle(request: Request) -> Response:
        path = request.url.path
        if path == "/openapi.json":
            return JSONResponse(recorder.document())
        if request.method == "HEAD":
            return Response(status_code=200)
        got = Received(
            method=request.method,
            raw_path=request.scope["raw_path"].decode("ascii"),
            query=list(request.query_params.multi_items()),
            headers=dict(request.headers),
            cookies=dict(request.cookies),
            body=await request.body(),
        )
        recorder.received.append(got)
        if path == "/list":
            return JSONResponse([1, 2, 3])
        if path == "/text":
            return PlainTextResponse("plain words")
        if path == "/fail":
            return PlainTextResponse("E" * 5000, status_code=500)
        if path == "/moved":
            return RedirectResponse("/text", status_code=302)
        if path == "/denied":
            return PlainTextResponse(f"credentials {got.headers.get('authorization')} refused", status_code=403)
        if not path.startswith(("/items", "/secure", "/form", "/admin/")):
            return JSONResponse({"detail": "not found"}, status_code=404)
        if request.method == "DELETE":
            return Response(status_code=204)
        echo = {"method": got.method, "path": got.raw_path, "query": got.query,
                "body": got.body.decode(errors="replace")}
        return JSONResponse(echo, status_code=201 if request.method == "POST" else 200)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{rest:path}", handle, methods=methods)])
