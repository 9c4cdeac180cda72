"""In-process backends: tools written as Python methods.

    class Greeter(LocalBackend):
        type_name = "greeter"

        @tool(read_only=True)
        async def greet(self, name: str, excited: bool = False) -> str:
            "Say hello to someone."
            return f"Hello, {name}{'!' if excited else '.'}"

The input schema comes from the signature (through pydantic), the description
from the docstring. A method may return a `str` (text), a pydantic model, a
`dict` or a `list` (structured content plus its JSON as text), a list of
content blocks, or a whole `CallToolResult`. Raising `ToolError` returns an
`isError` result with its message; any other exception does too, naming its type.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast, get_args, overload

import mcp_types as types
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from gateway.backends import Backend, CallContext

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
"""A tool method; `@tool` returns it unchanged, so it keeps its own type."""


class ToolError(Exception):
    """Raised by a tool to return an `isError` result carrying this message."""


@dataclass(frozen=True)
class _ToolSpec:
    name: str | None
    description: str | None
    annotations: types.ToolAnnotations | None


@dataclass(frozen=True)
class LocalTool:
    """One method exposed as a tool: its MCP description and the model that checks its arguments."""

    tool: types.Tool
    arguments: type[BaseModel]
    method_name: str
    context_param: str | None


@overload
def tool(fn: F) -> F: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    idempotent: bool = False,
    destructive: bool | None = None,
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    idempotent: bool = False,
    destructive: bool | None = None,
) -> F | Callable[[F], F]:
    """Mark a method of a `LocalBackend` as a tool. Usable bare (`@tool`) or with options."""

    def mark(f: F) -> F:
        annotations = types.ToolAnnotations(
            read_only_hint=read_only or None,
            idempotent_hint=(idempotent or read_only) or None,
            destructive_hint=destructive,
        )
        f.__manifold_tool__ = _ToolSpec(name, description, annotations)  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


def _describe(method: Callable[..., Any], spec: _ToolSpec) -> LocalTool:
    signature = inspect.signature(method)
    hints = inspect.get_annotations(method, eval_str=True)
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for pname, param in signature.parameters.items():
        if pname == "self":
            continue
        hint = hints.get(pname, Any)
        if hint is CallContext:
            context_param = pname
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (hint, default)
    model = create_model(  # type: ignore[call-overload]
        f"{method.__name__}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    schema = model.model_json_schema()
    schema.pop("title", None)
    doc = inspect.getdoc(method) or ""
    return LocalTool(
        tool=types.Tool(
            name=spec.name or method.__name__,
            description=spec.description or doc or None,
            input_schema=schema,
            annotations=spec.annotations,
        ),
        arguments=cast(type[BaseModel], model),
        method_name=method.__name__,
        context_param=context_param,
    )


def as_result(value: Any) -> types.CallToolResult:
    """Turn what a tool method returned into a `CallToolResult`."""
    if isinstance(value, types.CallToolResult):
        return value
    if isinstance(value, str):
        return types.CallToolResult(content=[types.TextContent(type="text", text=value)])
    if isinstance(value, list) and value and all(isinstance(v, get_args(types.ContentBlock)) for v in value):
        return types.CallToolResult(content=value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    structured = value if isinstance(value, dict) else {"result": value}
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=structured)


def error_result(message: str) -> types.CallToolResult:
    """An `isError` result with one text block."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


class LocalBackend(Backend):
    """A backend whose tools are `@tool` methods of the subclass, run in the gateway's process."""

    _tools: dict[str, LocalTool]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, LocalTool] = {}
        for attr in dir(cls):
            method = getattr(cls, attr, None)
            spec = getattr(method, "__manifold_tool__", None)
            if isinstance(spec, _ToolSpec) and method is not None:
                described = _describe(method, spec)
                found[described.tool.name] = described
        cls._tools = found

    async def list_tools(self) -> list[types.Tool]:
        return [t.tool for t in self._tools.values()]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> types.CallToolResult:
        local = self._tools.get(name)
        if local is None:
            return error_result(f"backend {self.name!r} has no tool {name!r}")
        try:
            parsed = local.arguments.model_validate(arguments)
        except ValidationError as exc:
            return error_result(f"invalid arguments for {name}: {exc}")
        kwargs = {field: getattr(parsed, field) for field in type(parsed).model_fields}
        if local.context_param:
            kwargs[local.context_param] = ctx
        try:
            return as_result(await getattr(self, local.method_name)(**kwargs))
        except ToolError as exc:
            return error_result(str(exc))
        except Exception as exc:
            return error_result(f"{name} failed: {type(exc).__name__}: {exc}")
