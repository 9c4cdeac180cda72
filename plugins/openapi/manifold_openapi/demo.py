"""A tiny notes API for trying the `openapi` backend type: notes kept in memory.

    python -m manifold_openapi.demo --port 8766 --host 127.0.0.1

Serves its own OpenAPI document at `/openapi.json` (the packaged
`demo-openapi.json`, with `servers` set to where it is actually served).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DOCUMENT = "demo-openapi.json"


def document() -> dict[str, Any]:
    """The demo API's OpenAPI document, as shipped in the package."""
    return dict(json.loads(files("manifold_openapi").joinpath(DOCUMENT).read_text(encoding="utf-8")))


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def build_app() -> Starlette:
    """A fresh app with an empty notebook."""
    notes: dict[int, dict[str, Any]] = {}
    ids = itertools.count(1)
    spec = document()

    async def openapi(request: Request) -> Response:
        served = copy.deepcopy(spec)
        served["servers"] = [{"url": str(request.base_url).rstrip("/")}]
        return JSONResponse(served)

    async def list_notes(request: Request) -> Response:
        tag = request.query_params.get("tag")
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            return _problem(400, "limit must be an integer")
        found = [n for n in notes.values() if tag is None or tag in n["tags"]]
        return JSONResponse({"notes": found[: max(limit, 0)], "total": len(found)})

    async def create_note(request: Request) -> Response:
        try:
            payload = await request.json()
        except ValueError:
            return _problem(400, "the body must be JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("title"), str) or not payload["title"]:
            return _problem(422, "title (a non-empty string) is required")
        tags = payload.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            return _problem(422, "tags must be a list of strings")
        note = {
            "id": next(ids),
            "title": payload["title"],
            "body": str(payload.get("body") or ""),
            "tags": tags,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        notes[note["id"]] = note
        return JSONResponse(note, status_code=201, headers={"Location": f"/notes/{note['id']}"})

    def _note_id(request: Request) -> int | None:
        raw = request.path_params["note_id"]
        return int(raw) if raw.isdigit() else None

    async def get_note(request: Request) -> Response:
        note_id = _note_id(request)
        if note_id is None or note_id not in notes:
            return _problem(404, f"no note {request.path_params['note_id']}")
        return JSONResponse(notes[note_id])

    async def delete_note(request: Request) -> Response:
        note_id = _note_id(request)
        if note_id is None or notes.pop(note_id, None) is None:
            return _problem(404, f"no note {request.path_params['note_id']}")
        return Response(status_code=204)

    return Starlette(routes=[
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/notes", list_notes, methods=["GET"]),
        Route("/notes", create_note, methods=["POST"]),
        Route("/notes/{note_id}", get_note, methods=["GET"]),
        Route("/notes/{note_id}", delete_note, methods=["DELETE"]),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m manifold_openapi.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args(argv)
    uvicorn.run(build_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
