"""The Backend base class: what every backend type implements.

A backend type is a subclass of `Backend` with a `type_name` and, usually, its
own `Config` model (a subclass of `BackendConfig`, which carries the keys every
backend shares). A plugin registers the class through the
`register_backend_types` hook; the gateway makes one instance per configured
`[backends.<name>]` table and then owns its life:

1. `open()` is entered once, in a task of the backend's own, to connect;
2. the list methods are called to build the catalog, again after
   `listener.list_changed()` and after every reconnect;
3. the call methods are called concurrently, as often as clients like;
4. `check()` is called on the health interval; raising means unhealthy;
5. `open()` is exited to disconnect; after a failure it is entered again.

Only `type_name`, `list_tools` and `call_tool` are required; everything else has
a default that means "this backend has none".
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]
"""`async (progress, total, message)`: report progress of the call in flight."""

LogFn = Callable[[types.LoggingLevel, Any, str | None], Awaitable[None]]
"""`async (level, data, logger)`: a log message the backend sent while serving the call."""

ClientAsk = types.CreateMessageRequest | types.ElicitRequest | types.ListRootsRequest
"""What a backend may ask the client while serving a call: sampling, elicitation, roots."""

AskFn = Callable[[ClientAsk], Awaitable[types.CreateMessageResult | types.ElicitResult | types.ListRootsResult]]
"""`await ask(request)`: put a backend's request to the client whose call it serves; its answer.

Raises `mcp.MCPError` when the client cannot answer (it did not declare the
capability, it refused, or its connection cannot carry the request)."""


class ToolFilter(BaseModel):
    """Glob filters on a backend's own tool names. A denied tool is neither listed nor callable."""

    model_config = ConfigDict(extra="forbid")
    allow: list[str] = Field(default_factory=list, description="only these (globs); empty means all")
    deny: list[str] = Field(default_factory=list, description="never these (globs); wins over allow")


class FallbackTarget(BaseModel):
    """Where one tool's calls go while its backend is unavailable."""

    model_config = ConfigDict(extra="forbid")
    tool: str = Field(description="exposed name of the tool that serves instead, e.g. files__read")
    arguments: dict[str, str] = Field(
        default_factory=dict, description="argument renames: primary name -> fallback name"
    )


class BackendConfig(BaseModel):
    """The keys every `[backends.<name>]` table may have. Backend types extend it."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, description="backend type; inferred from command/url")
    enabled: bool = Field(default=True, description="false: listed in /status as disabled, never started")
    namespace: str | None = Field(
        default=None, description="prefix of exposed names; default the backend name, '' for none"
    )
    tools: ToolFilter = Field(default_factory=ToolFilter)
    timeout_s: float = Field(default=30.0, gt=0, description="how long connecting may take")
    call_timeout_s: float | None = Field(
        default=None, gt=0, description="per-call timeout; default MANIFOLD_CALL_TIMEOUT_S"
    )
    fallback_for: list[str] = Field(
        default_factory=list, description="backends whose tools this one serves, by name, while they are down"
    )
    fallbacks: dict[str, str | FallbackTarget] = Field(
        default_factory=dict, description="per-tool fallbacks: own tool name -> exposed tool (or table)"
    )
    session: Literal["shared", "per_client"] = Field(
        default="shared",
        description="shared: one connection for all clients; per_client: one per client session, for a backend "
        "that asks clients for sampling, elicitation or roots while several clients call it",
    )


@dataclass(frozen=True)
class CallContext:
    """What travels with one call into a backend, besides name and arguments."""

    timeout_s: float | None = None
    progress: ProgressFn | None = None
    log: LogFn | None = None
    meta: Mapping[str, Any] | None = None
    ask: AskFn | None = None
    """Reaches the calling client with sampling, elicitation and roots requests; None when nothing can."""
    client: str | None = None
    """Which client session the call came from (for `session = "per_client"`); None when unknown."""


class BackendListener:
    """How a backend tells the gateway something changed. The gateway sets its own subclass."""

    async def list_changed(self, backend: Backend) -> None:
        """The backend's tools, resources or prompts changed; the catalog re-reads them."""

    async def resource_updated(self, backend: Backend, uri: str) -> None:
        """A resource the backend owns changed."""

    async def connection_lost(self, backend: Backend, why: str) -> None:
        """The backend can no longer serve (its process exited, its stream closed)."""


class Backend:
    """Base class of every backend type. See the module docstring for its life cycle."""

    type_name: ClassVar[str]
    """The `type = "..."` this class serves. Unique across all plugins."""

    Config: ClassVar[type[BackendConfig]] = BackendConfig
    """The pydantic model that validates this type's `[backends.<name>]` table."""

    protocol: str = "in-process"
    """Protocol era once connected (`2025-11-25`, `2026-07-28`, ...), for /status."""

    def __init__(self, name: str, config: BackendConfig) -> None:
        self.name = name
        self.config = config
        self.listener = BackendListener()

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """Connect; stay connected while the context is open. Entered and exited in one task."""
        yield

    async def check(self) -> None:
        """A cheap probe of health. Raise (any exception) when the backend cannot serve."""

    async def list_tools(self) -> list[types.Tool]:
        """Every tool, every page, under the backend's own names."""
        raise NotImplementedError

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        """Run one tool. A failure of the tool itself is a result with `isError`, not an exception."""
        raise NotImplementedError

    async def list_resources(self) -> list[types.Resource]:
        return []

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        return []

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        raise NotImplementedError(f"backend {self.name!r} has no resources")

    async def subscribe_resource(self, uri: str) -> None:
        """Ask to be told (through `listener.resource_updated`) when `uri` changes."""

    async def unsubscribe_resource(self, uri: str) -> None:
        """Stop telling about `uri`."""

    async def list_prompts(self) -> list[types.Prompt]:
        return []

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        raise NotImplementedError(f"backend {self.name!r} has no prompts")

    async def complete(
        self,
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
    ) -> types.CompleteResult:
        return types.CompleteResult(completion=types.Completion(values=[]))
