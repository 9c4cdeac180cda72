"""Reading an OpenAPI 3 document: its operations, each with a tool name and an input schema.

Pure functions over the parsed document; no I/O. `read_api(document, location)`
returns an `Api`: the operations in document order and the base URL its first
`servers` entry names. Anything that makes the document unusable raises
`SpecError` with a message that says where and why.

Input schemas: path, query, header and cookie parameters become top-level
properties under their own names (one that clashes with another is renamed
`<in>_<name>`, e.g. `query_id`); the request body is the single property `body`.
Local `$ref`s (`#/...`) are inlined; a schema that refers to itself becomes
`{}` at the point of recursion. OpenAPI 3.0 keywords that JSON Schema reads
differently (`nullable`, boolean `exclusiveMinimum`) are rewritten, and
`readOnly` properties are left out, since a request never carries them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urljoin

import yaml  # type: ignore[import-untyped]  # PyYAML ships no type information

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
NAME_MAX = 64
IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})  # OpenAPI: described elsewhere
NOT_SCHEMAS = frozenset({"example", "examples", "default", "enum", "const", "xml", "externalDocs"})

Location = Literal["path", "query", "header", "cookie"]
BodyKind = Literal["json", "form", "raw"]


class SpecError(Exception):
    """The OpenAPI document cannot be turned into tools; the message says where and why."""


@dataclass(frozen=True)
class Param:
    """One parameter of an operation and how to send it."""

    name: str
    location: Location
    prop: str
    """Its property in the tool's input schema."""
    required: bool
    style: str
    explode: bool
    as_json: bool
    """Declared with `content` (a media type) instead of `schema`: sent JSON-encoded."""


@dataclass(frozen=True)
class Body:
    """The request body of an operation: the `body` argument."""

    media_type: str
    kind: BodyKind
    required: bool


@dataclass(frozen=True)
class Operation:
    """One operation of the document, as one tool."""

    tool_name: str
    operation_id: str | None
    method: str
    """Upper case: GET, POST, ..."""
    path: str
    """The path template, `/notes/{note_id}`."""
    params: tuple[Param, ...]
    body: Body | None
    summary: str | None
    description: str
    input_schema: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Api:
    title: str
    operations: tuple[Operation, ...]
    base_url: str | None
    """From the first `servers` entry, resolved against the document's URL; None when it has none."""
    skipped: tuple[str, ...]
    """Operations left out, each with why."""


def parse_document(text: str, location: str) -> dict[str, Any]:
    """The document as a mapping: JSON, or YAML (a superset of JSON) when it is not JSON."""
    try:
        document = json.loads(text)
    except ValueError:
        document = _parse_yaml(text, location)
    if not isinstance(document, dict):
        raise SpecError(f"{location}: not an OpenAPI document (the top level is not an object)")
    return document


def _parse_yaml(text: str, location: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{location}: neither JSON nor YAML: {_one_line(str(exc))}") from exc


def read_api(document: Mapping[str, Any], location: str) -> Api:
    """Every operation of an OpenAPI 3 document. Raises `SpecError`."""
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        found = f"swagger {document['swagger']}" if "swagger" in document else f"openapi = {version!r}"
        raise SpecError(f"{location}: only OpenAPI 3.x documents are read, this one says {found}")
    paths = document.get("paths", {}) if document.get("paths") is not None else {}
    if not isinstance(paths, dict):
        raise SpecError(f"{location}: `paths` is not an object")
    refs = _Refs(document, location)
    operations: list[Operation] = []
    skipped: list[str] = []
    taken: set[str] = set()
    for path, item in paths.items():
        item = refs.deref(item, f"paths.{path}")
        shared = item.get("parameters") or []
        for method in METHODS:
            raw = item.get(method)
            if raw is None:
                continue
            where = f"paths.{path}.{method}"
            if not isinstance(raw, dict):
                raise SpecError(f"{location}: {where} is not an object")
            try:
                operations.append(_operation(refs, path, method, raw, shared, where, taken))
            except _Skip as why:
                skipped.append(f"{method.upper()} {path}: {why}")
    info = document.get("info") or {}
    title = str(info.get("title") or "API") if isinstance(info, dict) else "API"
    return Api(title, tuple(operations), _server_url(document, location), tuple(skipped))


class _Skip(Exception):
    """This operation cannot be offered as a tool; the others still can."""


def _operation(refs: _Refs, path: str, method: str, raw: Mapping[str, Any], shared: Any, where: str,
               taken: set[str]) -> Operation:
    operation_id = raw.get("operationId")
    operation_id = operation_id if isinstance(operation_id, str) and operation_id else None
    name = unique_name(tool_name(operation_id, method, path), taken)
    declared: dict[tuple[str, str], Mapping[str, Any]] = {}
    for i, p in enumerate([*(shared or []), *(raw.get("parameters") or [])]):
        p = refs.deref(p, f"{where}.parameters[{i}]")
        if not isinstance(p.get("name"), str) or not p["name"]:
            raise SpecError(f"{refs.location}: {where}.parameters[{i}] has no name")
        if p.get("in") == "header" and str(p.get("name", "")).lower() in IGNORED_HEADERS:
            continue
        declared[(str(p.get("name")), str(p.get("in")))] = p  # the operation's own win over the path's
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: list[Param] = []
    body = _body(refs, raw.get("requestBody"), where)
    used = {"body"} if body is not None else set()
    for (pname, location), p in sorted(declared.items(), key=lambda kv: _ORDER.get(kv[0][1], 9)):
        if location not in _ORDER:
            raise SpecError(f"{refs.location}: {where}: parameter {pname!r} has in = {location!r}")
        prop = pname if pname not in used else f"{location}_{pname}"
        used.add(prop)
        prop_schema, as_json = _param_schema(refs, p, f"{where}.parameters.{pname}")
        if p.get("description") and "description" not in prop_schema:
            prop_schema = {**prop_schema, "description": str(p["description"])}
        properties[prop] = prop_schema
        is_required = bool(p.get("required")) or location == "path"
        if is_required:
            required.append(prop)
        style = str(p.get("style") or ("form" if location in ("query", "cookie") else "simple"))
        explode = bool(p.get("explode", style == "form"))
        params.append(Param(pname, location, prop, is_required, style, explode, as_json))  # type: ignore[arg-type]
    missing = [n for n in re.findall(r"{([^}]+)}", path) if (n, "path") not in declared]
    if missing:
        raise SpecError(f"{refs.location}: {where}: path parameter(s) {', '.join(missing)} not declared")
    if body is not None:
        body_spec, body_schema = body
        properties["body"] = body_schema
        if body_spec.required:
            required.append("body")
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    summary = str(raw["summary"]).strip() if raw.get("summary") else None
    return Operation(
        tool_name=name,
        operation_id=operation_id,
        method=method.upper(),
        path=path,
        params=tuple(params),
        body=body[0] if body is not None else None,
        summary=summary,
        description=_description(summary, raw, method, path),
        input_schema=schema,
    )


_ORDER = {"path": 0, "query": 1, "header": 2, "cookie": 3}


def _description(summary: str | None, raw: Mapping[str, Any], method: str, path: str) -> str:
    parts = [p for p in (summary, str(raw.get("description") or "").strip()) if p]
    if raw.get("deprecated"):
        parts.append("Deprecated.")
    parts.append(f"HTTP: {method.upper()} {path}")
    return "\n\n".join(parts)


def _param_schema(refs: _Refs, p: Mapping[str, Any], where: str) -> tuple[dict[str, Any], bool]:
    if "schema" in p:
        return refs.schema(p["schema"], where), False
    content = p.get("content")
    if isinstance(content, dict) and content:
        media = refs.deref(next(iter(content.values())), where)
        return refs.schema(media.get("schema", {}), where), True
    return {}, False


def _body(refs: _Refs, raw: Any, where: str) -> tuple[Body, dict[str, Any]] | None:
    if raw is None:
        return None
    request_body = refs.deref(raw, f"{where}.requestBody")
    content = request_body.get("content") or {}
    if not isinstance(content, dict) or not content:
        return None
    required = bool(request_body.get("required"))
    media_types = list(content)
    chosen = next((m for m in media_types if _is_json(m)), None)
    kind: BodyKind = "json"
    if chosen is None:
        chosen = next((m for m in media_types if m.startswith("application/x-www-form-urlencoded")), None)
        kind = "form"
    if chosen is None:
        chosen = next((m for m in media_types if not m.startswith("multipart/")), None)
        kind = "raw"
    if chosen is None:
        raise _Skip(f"multipart request bodies ({', '.join(media_types)}) are not supported")
    media = refs.deref(content[chosen], f"{where}.requestBody.content")
    if kind == "raw":
        schema: dict[str, Any] = {"type": "string", "description": f"the request body, sent as {chosen}"}
    else:
        schema = refs.schema(media.get("schema", {}), f"{where}.requestBody", request=True)
    if request_body.get("description") and "description" not in schema:
        schema = {**schema, "description": str(request_body["description"])}
    return Body(chosen, kind, required), schema


def _is_json(media_type: str) -> bool:
    essence = media_type.split(";")[0].strip().lower()
    return essence == "application/json" or essence.endswith("+json")


def tool_name(operation_id: str | None, method: str, path: str) -> str:
    """The operationId, or `<method>_<path>`, fitted to ^[A-Za-z0-9_-]{1,64}$."""
    source = operation_id or f"{method.lower()} {path}"
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", source).strip("_") or method.lower()
    if len(name) > NAME_MAX:
        digest = hashlib.sha256(source.encode()).hexdigest()[:8]
        name = f"{name[: NAME_MAX - 9]}_{digest}"
    return name


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`, ... when taken (in document order, so stable)."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: NAME_MAX - len(suffix)] + suffix
    taken.add(candidate)
    return candidate


def _server_url(document: Mapping[str, Any], location: str) -> str | None:
    servers = document.get("servers") or []
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        # OpenAPI: no servers means "/", relative to where the document came from.
        return urljoin(location, "/") if _is_url(location) else None
    server = servers[0]
    url = str(server.get("url") or "/")
    for var, spec in (server.get("variables") or {}).items():
        default = spec.get("default") if isinstance(spec, dict) else None
        url = url.replace(f"{{{var}}}", str(default or ""))
    if _is_url(url):
        return url
    return urljoin(location, url) if _is_url(location) else None


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Refs:
    """Follows local `$ref`s (`#/components/...`) and turns OpenAPI schemas into JSON Schema."""

    def __init__(self, document: Mapping[str, Any], location: str) -> None:
        self.document = document
        self.location = location

    def target(self, ref: str, where: str) -> Any:
        if not ref.startswith("#"):
            raise SpecError(f"{self.location}: {where}: $ref {ref!r} points outside the document; "
                            "only local references (#/components/...) are followed")
        node: Any = self.document
        for token in ref[1:].split("/")[1:]:
            key = unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise SpecError(f"{self.location}: {where}: $ref {ref!r} points at nothing")
        return node

    def deref(self, node: Any, where: str) -> Mapping[str, Any]:
        """A parameter, request body, path item ...: the object itself, following `$ref`s."""
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                raise SpecError(f"{self.location}: {where}: $ref {ref!r} refers to itself")
            seen.add(ref)
            node = self.target(ref, where)
        if not isinstance(node, dict):
            raise SpecError(f"{self.location}: {where} is not an object")
        return node

    def schema(self, node: Any, where: str, *, request: bool = False) -> dict[str, Any]:
        converted = self._schema(node, where, request, frozenset())
        return converted if isinstance(converted, dict) else {}

    def _schema(self, node: Any, where: str, request: bool, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [self._schema(n, where, request, seen) for n in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                return {"description": f"(recursive: {ref.rsplit('/', 1)[-1]})"}
            target = self.target(ref, where)
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            merged = {**target, **siblings} if isinstance(target, dict) else target
            return self._schema(merged, where, request, seen | {ref})
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in NOT_SCHEMAS or key == "properties":
                out[key] = value
            elif key not in ("nullable", "discriminator"):
                out[key] = self._schema(value, where, request, seen)
        if isinstance(node.get("properties"), dict):
            props = {k: v for k, v in node["properties"].items()
                     if not (request and isinstance(v, dict) and v.get("readOnly") is True)}
            dropped = set(node["properties"]) - set(props)
            out["properties"] = {k: self._schema(v, where, request, seen) for k, v in props.items()}
            if isinstance(node.get("required"), list) and dropped:
                out["required"] = [r for r in node["required"] if r not in dropped]
        if node.get("nullable") is True:
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        for bound in ("Minimum", "Maximum"):
            flag = out.get(f"exclusive{bound}")
            if flag is True and f"{bound.lower()}" in out:
                out[f"exclusive{bound}"] = out.pop(bound.lower())
            elif isinstance(flag, bool):
                del out[f"exclusive{bound}"]
        return out
