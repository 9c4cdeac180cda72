"""The `openapi` backend type: each operation of an OpenAPI 3 document is one tool.

    [backends.notes]
    type = "openapi"
    spec = "http://127.0.0.1:8766/openapi.json"   # or a file path
    bearer_token = "${NOTES_TOKEN}"

One `httpx2.AsyncClient` per backend, opened in `open()` and closed when it
exits. Credentials are added to each API request, never to the client, so the
document itself is fetched without them. Secrets are `SecretStr` and are masked
in every message this backend writes.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

import anyio
import httpx2
import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway import Backend, BackendConfig, CallContext, error_result
from manifold_openapi.encode import ArgumentError, Request, build_request
from manifold_openapi.spec import Api, Operation, SpecError, parse_document, read_api

log = logging.getLogger(__name__)

USER_AGENT = "manifold-openapi/0.1"


class OperationFilter(BaseModel):
    """Globs on operationIds (or, for an operation without one, its tool name)."""

    model_config = ConfigDict(extra="forbid")
    allow: list[str] = Field(default_factory=list, description="only these; empty means all")
    deny: list[str] = Field(default_factory=list, description="never these; wins over allow")

    def admits(self, operation: Operation) -> bool:
        key = operation.operation_id or operation.tool_name
        if self.allow and not any(fnmatch.fnmatchcase(key, g) for g in self.allow):
            return False
        return not any(fnmatch.fnmatchcase(key, g) for g in self.deny)


class OpenApiConfig(BackendConfig):
    """`[backends.<name>]` of `type = "openapi"`. `timeout_s` also bounds each HTTP request."""

    spec: str = Field(description="the OpenAPI 3 document (JSON or YAML): a file path or an http(s) URL")
    base_url: str | None = Field(
        default=None, description="where the API is; default the document's first `servers` entry"
    )
    bearer_token: SecretStr | None = Field(default=None, description="sent as Authorization: Bearer ...")
    api_key: SecretStr | None = Field(default=None, description="sent under api_key_name, in api_key_in")
    api_key_name: str = Field(default="X-API-Key", description="the header or query parameter of api_key")
    api_key_in: Literal["header", "query"] = Field(default="header", description="where api_key goes")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="sent with every API request")
    follow_redirects: bool = Field(default=False, description="follow 3xx answers of API calls")
    operations: OperationFilter = Field(default_factory=OperationFilter)
    max_response_bytes: int = Field(default=1_000_000, ge=1, description="longest response body read")
    error_excerpt_chars: int = Field(default=2000, ge=0, description="how much of an error body a result quotes")
    health_check: bool = Field(default=True, description="probe base_url with HEAD on the health interval")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("spec")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give a file path or an http(s) URL of an OpenAPI 3 document")
        if "://" in value and not value.startswith(("http://", "https://")):
            raise ValueError(f"unsupported scheme {value.partition('://')[0]!r}; use a file path or http(s)://")
        return value


class OpenApiBackend(Backend):
    """An HTTP API described by an OpenAPI 3 document; one tool per operation."""

    type_name = "openapi"
    Config = OpenApiConfig
    config: OpenApiConfig

    def __init__(self, name: str, config: OpenApiConfig) -> None:
        super().__init__(name, config)
        self._client: httpx2.AsyncClient | None = None
        self._operations: dict[str, Operation] = {}
        self._tools: list[types.Tool] = []
        self._base_url = ""

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        timeout = httpx2.Timeout(self.config.timeout_s)
        async with httpx2.AsyncClient(
            timeout=timeout, follow_redirects=self.config.follow_redirects, headers={"User-Agent": USER_AGENT}
        ) as client:
            api = await self._load(client)
            base_url = self.config.base_url or api.base_url
            if base_url is None:
                raise SpecError(f"{self.config.spec}: the document names no absolute server URL; "
                                "set base_url in the backend's config")
            for why in api.skipped:
                log.warning("backend %s: operation skipped: %s", self.name, why)
            admitted = [op for op in api.operations if self.config.operations.admits(op)]
            self._operations = {op.tool_name: op for op in admitted}
            self._tools = [_tool(op) for op in admitted]
            self._base_url = base_url.rstrip("/")
            self._client = client
            try:
                yield
            finally:
                self._client = None

    async def _load(self, client: httpx2.AsyncClient) -> Api:
        location = self.config.spec
        if location.startswith(("http://", "https://")):
            try:
                response = await client.get(location, follow_redirects=True)
            except httpx2.HTTPError as exc:
                raise SpecError(f"{location}: could not fetch the document: {type(exc).__name__}: {exc}") from exc
            if response.status_code != 200:
                raise SpecError(f"{location}: fetching the document answered HTTP {response.status_code}")
            text = response.text
        else:
            path = await anyio.Path(location).expanduser()
            try:
                text = await path.read_text(encoding="utf-8")
            except FileNotFoundError as exc:
                cwd = await anyio.Path.cwd()
                raise SpecError(f"{location}: no such file (a relative path is from {cwd})") from exc
            except (OSError, UnicodeError) as exc:
                raise SpecError(f"{location}: cannot read the document: {exc}") from exc
            location = str(await path.resolve())
        return read_api(parse_document(text, location), location)

    def describe_failure(self, exc: BaseException) -> str:
        """One line for /status: a bad document's own message, without the exception's type."""
        text = str(exc) if isinstance(exc, SpecError) else f"{type(exc).__name__}: {exc}"
        return self._redact(" ".join(text.split()))

    async def check(self) -> None:
        if self.config.health_check and self._client is not None:
            await self._client.head(self._base_url + "/")  # any answer at all means the API is up

    async def list_tools(self) -> list[types.Tool]:
        return list(self._tools)

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        operation = self._operations.get(name)
        if operation is None:
            return error_result(f"backend {self.name!r} has no tool {name!r}")
        if self._client is None:
            return error_result(f"backend {self.name!r} is not open")
        try:
            request = build_request(operation, arguments)
        except ArgumentError as exc:
            return error_result(f"{name}: {exc}")
        try:
            async with self._send(self._client, request) as response:
                body, truncated = await _read(response, self.config.max_response_bytes)
        except httpx2.TimeoutException:
            return error_result(f"{operation.label} got no answer within {self.config.timeout_s:g}s")
        except httpx2.HTTPError as exc:
            return error_result(self._redact(f"{operation.label} failed: {type(exc).__name__}: {exc}"))
        except (ValueError, UnicodeError) as exc:  # e.g. a header value that HTTP cannot carry
            return error_result(self._redact(f"{operation.label}: cannot send: {exc}"))
        if 200 <= response.status_code < 300:
            return _success(response, body, truncated, self.config.max_response_bytes)
        label = f"{request.method} {request.path}"
        return error_result_for(label, response, self._redact(_decode(response, body)), self.config.error_excerpt_chars)

    def _send(self, client: httpx2.AsyncClient, request: Request) -> contextlib.AbstractAsyncContextManager[
            httpx2.Response]:
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        headers.update(request.headers)
        query = httpx2.QueryParams(tuple(request.query))
        if self.config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.config.bearer_token.get_secret_value()}"
        if self.config.api_key is not None:
            if self.config.api_key_in == "header":
                headers[self.config.api_key_name] = self.config.api_key.get_secret_value()
            else:
                query = query.add(self.config.api_key_name, self.config.api_key.get_secret_value())
        content: str | None = request.raw_body
        if request.has_json_body:
            content = json.dumps(request.json_body, ensure_ascii=False)
        return client.stream(request.method, self._base_url + request.path, params=query, headers=headers,
                             content=content, data=request.form_body)

    def _secrets(self) -> Iterable[str]:
        for secret in (self.config.bearer_token, self.config.api_key, *self.config.headers.values()):
            if secret is not None and secret.get_secret_value():
                yield secret.get_secret_value()

    def _redact(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text


def _tool(operation: Operation) -> types.Tool:
    method = operation.method
    annotations = types.ToolAnnotations(
        title=operation.summary,
        read_only_hint=True if method in ("GET", "HEAD") else None,
        idempotent_hint=True if method in ("PUT", "DELETE") else None,
        destructive_hint=True if method == "DELETE" else None,
    )
    return types.Tool(name=operation.tool_name, description=operation.description,
                      input_schema=dict(operation.input_schema), annotations=annotations)


async def _read(response: httpx2.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _media_type(response: httpx2.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _is_text(media_type: str) -> bool:
    return (not media_type or media_type.startswith("text/") or _is_json(media_type)
            or any(k in media_type for k in ("xml", "javascript", "yaml", "x-www-form-urlencoded")))


def _decode(response: httpx2.Response, body: bytes) -> str:
    return body.decode(response.encoding or "utf-8", errors="replace")


def _status_line(response: httpx2.Response) -> str:
    return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()


def _success(response: httpx2.Response, body: bytes, truncated: bool, limit: int) -> types.CallToolResult:
    media_type = _media_type(response)
    if not body:
        return types.CallToolResult(content=[types.TextContent(type="text", text=_status_line(response))])
    if media_type.startswith("image/") and not truncated:
        data = base64.b64encode(body).decode()
        return types.CallToolResult(content=[types.ImageContent(type="image", data=data, mime_type=media_type)])
    if not _is_text(media_type):
        text = f"{_status_line(response)}: {len(body)}{'+' if truncated else ''} bytes of {media_type} (not text)"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])
    text = _decode(response, body)
    if truncated:
        text += f"\n[response truncated at {limit} bytes: max_response_bytes]"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])
    if _is_json(media_type):
        try:
            value = json.loads(text)
        except ValueError:
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)])
        structured = value if isinstance(value, dict) else {"result": value}
        pretty = json.dumps(value, indent=2, ensure_ascii=False)
        return types.CallToolResult(content=[types.TextContent(type="text", text=pretty)],
                                    structured_content=structured)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def error_result_for(label: str, response: httpx2.Response, body: str, limit: int) -> types.CallToolResult:
    """A non-2xx answer to `label` (`GET /notes/7`): `isError`, the status, at most `limit` characters of body."""
    message = f"{_status_line(response)} from {label}"
    location = response.headers.get("location")
    if 300 <= response.status_code < 400 and location:
        message += f" (redirect to {location} not followed: set follow_redirects = true to follow)"
    excerpt = body[:limit] + ("…" if len(body) > limit else "")
    text = f"{message}:\n{excerpt}" if excerpt.strip() else message
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content={"status": response.status_code, "reason": response.reason_phrase, "body": excerpt},
        is_error=True,
    )
