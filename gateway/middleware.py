"""The call chain: middleware around every `tools/call`, built once at start-up.

A middleware is an async callable `(call, call_next) -> CallToolResult`, like a
starlette middleware: it may look at or change the call, answer it itself, or
pass it on with `await call_next(call)`. Plugins register them through the
`register_middleware` hook; the gateway folds them, in registration order
(outermost first), around the function that routes the call to its backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import mcp_types as types

from gateway.backends import CallContext


@dataclass(frozen=True)
class ToolCall:
    """One call on its way to a backend: the exposed name, where it goes, with what."""

    tool: str
    """The name the client called (`time__get_current_time`)."""
    backend: str
    """The backend that owns it."""
    original: str
    """The backend's own name for the tool (`get_current_time`)."""
    arguments: dict[str, Any]
    context: CallContext = field(default_factory=CallContext)


CallNext = Callable[[ToolCall], Awaitable[types.CallToolResult]]


class Middleware(Protocol):
    """An interceptor of one tool call."""

    async def __call__(self, call: ToolCall, call_next: CallNext) -> types.CallToolResult: ...


def build_chain(middleware: Sequence[Middleware], endpoint: CallNext) -> CallNext:
    """Fold `middleware` around `endpoint`, the first in the list outermost."""
    chain = endpoint
    for mw in reversed(middleware):
        chain = _bind(mw, chain)
    return chain


def _bind(mw: Middleware, call_next: CallNext) -> CallNext:
    async def step(call: ToolCall) -> types.CallToolResult:
        return await mw(call, call_next)

    return step
