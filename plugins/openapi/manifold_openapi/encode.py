"""A tool call's arguments as the HTTP request its operation describes.

Serialisation follows OpenAPI's `style` and `explode`: query and cookie
parameters default to `form` (an array is repeated, `?tag=a&tag=b`), path and
header parameters to `simple` (an array is joined with commas). Path values are
percent-encoded whole, so `a/b` stays one segment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from manifold_openapi.spec import Operation, Param


class ArgumentError(Exception):
    """The arguments cannot make a request (a required one is missing, one is unknown)."""


@dataclass(frozen=True)
class Request:
    """What to send, before the backend adds the base URL and credentials."""

    method: str
    path: str
    """Filled in and encoded: `/notes/7`."""
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    json_body: Any = None
    form_body: Mapping[str, Any] | None = None
    raw_body: str | None = None
    has_json_body: bool = False


def build_request(operation: Operation, arguments: Mapping[str, Any]) -> Request:
    known = {p.prop for p in operation.params} | ({"body"} if operation.body else set())
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise ArgumentError(f"unknown argument(s) {', '.join(unknown)}; {operation.tool_name} takes "
                            f"{', '.join(sorted(known)) or 'none'}")
    path = operation.path
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for param in operation.params:
        if param.prop not in arguments or arguments[param.prop] is None:
            if param.required:
                raise ArgumentError(f"missing required argument {param.prop!r} ({param.location} parameter)")
            continue
        value = arguments[param.prop]
        if param.location == "path":
            path = path.replace(f"{{{param.name}}}", quote(_simple(param, value), safe=""))
        elif param.location == "query":
            query.extend(_query(param, value))
        elif param.location == "header":
            headers[param.name] = _simple(param, value)
        else:
            cookies.append(f"{param.name}={_simple(param, value)}")
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    request = Request(operation.method, path, query, headers)
    body = operation.body
    if body is None or "body" not in arguments:
        if body is not None and body.required:
            raise ArgumentError("missing required argument 'body' (the request body)")
        return request
    value = arguments["body"]
    if body.kind == "json":
        headers["Content-Type"] = body.media_type
        return Request(operation.method, path, query, headers, json_body=value, has_json_body=True)
    if body.kind == "form":
        if not isinstance(value, dict):
            raise ArgumentError(f"body must be an object for {body.media_type}")
        form = {k: v if isinstance(v, list) else _text(v) for k, v in value.items()}
        return Request(operation.method, path, query, headers, form_body=form)
    headers["Content-Type"] = body.media_type
    return Request(operation.method, path, query, headers, raw_body=value if isinstance(value, str) else _text(value))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _simple(param: Param, value: Any) -> str:
    """`simple` style: arrays `a,b`; objects `k,v,k2,v2`, or `k=v,k2=v2` exploded."""
    if param.as_json:
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        if param.explode:
            return ",".join(f"{k}={_text(v)}" for k, v in value.items())
        return ",".join(f"{k},{_text(v)}" for k, v in value.items())
    return _text(value)


_DELIMITERS = {"form": ",", "spaceDelimited": " ", "pipeDelimited": "|"}


def _query(param: Param, value: Any) -> list[tuple[str, str]]:
    if param.as_json:
        return [(param.name, json.dumps(value, separators=(",", ":")))]
    if isinstance(value, list):
        if param.explode:
            return [(param.name, _text(v)) for v in value]
        return [(param.name, _DELIMITERS.get(param.style, ",").join(_text(v) for v in value))]
    if isinstance(value, dict):
        if param.style == "deepObject":
            return [(f"{param.name}[{k}]", _text(v)) for k, v in value.items()]
        if param.explode:
            return [(str(k), _text(v)) for k, v in value.items()]
        return [(param.name, ",".join(f"{k},{_text(v)}" for k, v in value.items()))]
    return [(param.name, _text(value))]
