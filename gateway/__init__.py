"""Manifold: a plugin-based MCP aggregator gateway. This module is the public API for plugins."""

from gateway.backends import Backend, BackendConfig, BackendListener, CallContext, FallbackTarget, ToolFilter
from gateway.errors import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    GatewayError,
    PluginError,
    Problem,
    RoutingError,
    UnknownTool,
)
from gateway.hookspecs import hookimpl, hookspec
from gateway.local import LocalBackend, ToolError, as_result, error_result, tool
from gateway.mcpbackend import McpBackend, McpBackendConfig
from gateway.middleware import CallNext, Middleware, ToolCall
from gateway.patterns.base import Pattern, Toolbox, ToolInfo
from gateway.patterns.plan import Plan, PlanResult, Step, StepReport, StepResult
from gateway.patterns.steps import Deadline, run_step

__all__ = [
    "Backend",
    "BackendConfig",
    "BackendError",
    "BackendListener",
    "BackendProtocolError",
    "BackendTimeout",
    "BackendUnavailable",
    "CallContext",
    "CallNext",
    "ConfigError",
    "Deadline",
    "FallbackTarget",
    "GatewayError",
    "LocalBackend",
    "McpBackend",
    "McpBackendConfig",
    "Middleware",
    "Pattern",
    "Plan",
    "PlanResult",
    "PluginError",
    "Problem",
    "RoutingError",
    "Step",
    "StepReport",
    "StepResult",
    "ToolCall",
    "ToolError",
    "ToolFilter",
    "ToolInfo",
    "Toolbox",
    "UnknownTool",
    "as_result",
    "error_result",
    "hookimpl",
    "hookspec",
    "run_step",
    "tool",
]
