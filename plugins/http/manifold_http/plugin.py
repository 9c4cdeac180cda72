"""The `http` backend type: a remote MCP server over streamable HTTP, or SSE when configured.

One HTTP client (one connection pool) and one MCP session per backend, for its
whole life. Header values are secrets: they never appear in logs or /status.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import httpx2
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from pydantic import Field, SecretStr

from gateway import McpBackend, McpBackendConfig, hookimpl
from manifold_http.keepalive import KeepAliveTransport


class HttpConfig(McpBackendConfig):
    url: str = Field(description="the server's MCP endpoint, e.g. http://127.0.0.1:3001/mcp")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="sent with every request")
    transport: Literal["streamable-http", "sse"] = Field(default="streamable-http", description="wire protocol")
    read_timeout_s: float = Field(default=300.0, gt=0, description="longest silence on a response stream")


class HttpBackend(McpBackend):
    type_name = "http"
    Config = HttpConfig
    config: HttpConfig

    @contextlib.asynccontextmanager
    async def transport(self) -> AsyncIterator[Any]:
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        if self.config.transport == "sse":
            async with sse_client(self.config.url, headers=headers, timeout=self.config.timeout_s,
                                  sse_read_timeout=self.config.read_timeout_s) as streams:
                yield streams
            return
        timeout = httpx2.Timeout(self.config.timeout_s, read=self.config.read_timeout_s)
        async with (
            httpx2.AsyncClient(headers=headers, timeout=timeout, follow_redirects=False,
                               transport=KeepAliveTransport()) as http,
            streamable_http_client(self.config.url, http_client=http) as streams,
        ):
            yield streams

    def describe_failure(self, exc: BaseException) -> str:
        text = super().describe_failure(exc)
        if "ConnectError" in text or "connect" in text.lower():
            return f"cannot connect to {self.config.url}: {text}"
        return text


@hookimpl
def register_backend_types(register: Callable[[type[HttpBackend]], None]) -> None:
    register(HttpBackend)
