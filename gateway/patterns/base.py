"""What a pattern is, and what it may use of the gateway while it runs.

A pattern gets a validated `Plan` and a `Toolbox`: the toolbox is the only way
it reaches backends, so patterns (built-in or from a plugin) never see the
gateway's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import mcp_types as types

if TYPE_CHECKING:
    from gateway.patterns.plan import Plan, PlanResult, StepReport


@dataclass(frozen=True)
class ToolInfo:
    """A tool of the catalog as a pattern sees it."""

    name: str
    """Exposed name (`time__get_current_time`)."""
    backend: str
    annotations: types.ToolAnnotations | None
    input_schema: dict[str, Any]


class Toolbox(Protocol):
    """The gateway, as far as a running pattern may touch it."""

    def lookup(self, name: str) -> ToolInfo | None:
        """The tool exposed under `name`, or None."""
        ...

    def matching(self, glob: str) -> list[ToolInfo]:
        """Every exposed tool whose name matches the glob, sorted by name."""
        ...

    def unavailable(self, backend: str) -> str | None:
        """None when `backend` can take calls now; else why not (with since when)."""
        ...

    async def call(
        self, name: str, arguments: dict[str, Any], *, timeout_s: float | None = None
    ) -> types.CallToolResult:
        """Call one exposed tool through the gateway's middleware chain.

        Failures of any kind come back as `isError` results, never as exceptions.
        """
        ...


class Pattern(Protocol):
    """A way to run a plan's steps. Registered through the `register_patterns` hook."""

    name: str
    """The `pattern` value that selects it (`sequential`)."""
    description: str
    """One line for docs and the `gateway__coordinate` schema."""

    async def run(self, plan: Plan, toolbox: Toolbox, report: StepReport) -> PlanResult:
        """Run the plan and say how each step went. `report(step)` as each step finishes."""
        ...
