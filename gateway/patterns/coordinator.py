"""`gateway__coordinate` and `[routes.*]`: from tool arguments to a pattern run to a `CallToolResult`.

The gateway core makes one `Coordinator` from the registered patterns and
hands it a `Toolbox` per call:

    coordinator = Coordinator(registry.patterns)
    coordinator.tool()                                   # list it
    await coordinator.run(arguments, toolbox, progress)  # call it
    coordinator.validate_route(name, route, toolbox)     # at start-up: problems, each naming its step
    coordinator.route_tool(name, route)                  # list a route
    await coordinator.run_route(route, inputs, toolbox, progress)

A plan is parsed and validated whole before anything runs; a bad plan is an
`isError` result naming each problem's step. Otherwise `structuredContent` is
the `PlanResult` (see `PLAN_OUTPUT_SCHEMA`), the text a short summary, and
`isError` is true only when the plan `failed`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from pydantic import Field

from gateway.backends import ProgressFn
from gateway.patterns import references
from gateway.patterns.auto import choose
from gateway.patterns.base import Pattern, Toolbox
from gateway.patterns.plan import (
    Plan,
    PlanError,
    PlanModel,
    PlanResult,
    StepReport,
    StepResult,
    build_plan,
    parse_plan,
)
from gateway.patterns.schemas import PLAN_OUTPUT_SCHEMA, plan_input_schema
from gateway.patterns.validation import validate

log = logging.getLogger("manifold.patterns")

TOOL_NAME = "gateway__coordinate"
ROUTE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SUMMARY_CHARS = 200


class RouteConfig(PlanModel):
    """One `[routes.<name>]` table: a plan bound to its steps, exposed as the tool `<name>`."""

    description: str | None = Field(default=None, description="what the route's tool does, for clients")
    input_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema of the inputs; default: each {{ input.x }} a required string"
    )


def route_inputs(route: RouteConfig) -> list[str]:
    """The input names the route's steps refer to (`{{ input.x }}` -> `x`), in order of first use."""
    names: dict[str, None] = {}
    for step in route.steps:
        for value in (step.arguments, step.compensate.arguments if step.compensate else {}):
            for ref in references.find(value):
                if ref.source == references.INPUT and ref.path:
                    names[ref.path[0]] = None
    return list(names)


def route_input_schema(route: RouteConfig) -> dict[str, Any]:
    """The declared input schema, or one derived from the references: every input a required string."""
    if route.input_schema is not None:
        return route.input_schema
    names = route_inputs(route)
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in names},
        "required": names,
        "additionalProperties": False,
    }


class Coordinator:
    """Runs plans and routes with the registered patterns."""

    def __init__(self, patterns: Mapping[str, Pattern], *, tool_name: str = TOOL_NAME) -> None:
        self.patterns = dict(patterns)
        self.tool_name = tool_name

    def tool(self) -> types.Tool:
        """The `gateway__coordinate` tool as clients list it."""
        return types.Tool(
            name=self.tool_name,
            description=(
                "Run several tool calls as one request under a pattern you choose: sequential, parallel, "
                "fallback, coordinated (depends_on graph with compensation), broadcast (glob tool), or auto. "
                "A step's arguments may use earlier results: {{ id.text }}, {{ id.structured.key }}. "
                "The result lists every step's status, content and error."
            ),
            input_schema=plan_input_schema({n: p.description for n, p in self.patterns.items()}),
            output_schema=PLAN_OUTPUT_SCHEMA,
        )

    async def run(
        self, arguments: Mapping[str, Any], toolbox: Toolbox, progress: ProgressFn | None = None
    ) -> types.CallToolResult:
        """Parse, validate and run one plan given to `gateway__coordinate`."""
        try:
            plan = parse_plan(arguments)
        except PlanError as exc:
            return invalid(exc.problems)
        return await self._execute(plan, toolbox, progress)

    def route_tool(self, name: str, route: RouteConfig) -> types.Tool:
        """The tool a route is exposed as."""
        described = route.description or f"Runs {len(route.steps)} step(s) with the {route.pattern} pattern."
        return types.Tool(
            name=name,
            description=described,
            input_schema=route_input_schema(route),
            output_schema=PLAN_OUTPUT_SCHEMA,
        )

    def validate_route(self, name: str, route: RouteConfig, toolbox: Toolbox | None) -> list[str]:
        """Every problem of a route's definition, each naming its step (not prefixed by the route name).

        :param toolbox: where its tools are looked up; None checks only the route's own shape.
        """
        problems: list[str] = []
        if not ROUTE_NAME.fullmatch(name):
            problems.append(f"route name {name!r} must match {ROUTE_NAME.pattern}")
        plan = self._route_plan(route, {})
        problems += validate(plan, toolbox, patterns=self.patterns, runs_as=self._runs_as(plan))
        schema = route.input_schema
        if schema is not None:
            if schema.get("type") != "object":
                problems.append('input_schema: must be an object schema ("type": "object")')
            declared = schema.get("properties")
            if isinstance(declared, Mapping):
                problems += [
                    f"input {{{{ input.{x} }}}} is not among input_schema.properties"
                    for x in route_inputs(route)
                    if x not in declared
                ]
        return problems

    async def run_route(
        self,
        route: RouteConfig,
        inputs: Mapping[str, Any],
        toolbox: Toolbox,
        progress: ProgressFn | None = None,
    ) -> types.CallToolResult:
        """Run a route with the inputs its tool was called with."""
        return await self._execute(self._route_plan(route, inputs), toolbox, progress)

    def _route_plan(self, route: RouteConfig, inputs: Mapping[str, Any]) -> Plan:
        return build_plan(route, inputs=dict(inputs))

    def _runs_as(self, plan: Plan) -> str:
        return choose(plan)[0] if plan.pattern == "auto" else plan.pattern

    async def _execute(self, plan: Plan, toolbox: Toolbox, progress: ProgressFn | None) -> types.CallToolResult:
        runs_as = self._runs_as(plan)
        problems = validate(plan, toolbox, patterns=self.patterns, runs_as=runs_as)
        if problems:
            return invalid(problems)
        total = len(toolbox.matching(plan.steps[0].tool)) if runs_as == "broadcast" else len(plan.steps)
        pattern = self.patterns[plan.pattern]
        try:
            result = await pattern.run(plan, toolbox, progress_report(progress, total))
        except Exception as exc:  # a plugin's pattern must not take the gateway down
            log.exception("pattern %s raised", plan.pattern)
            return error_result(f"pattern {plan.pattern!r} failed: {type(exc).__name__}: {exc}")
        return as_call_result(result)


def progress_report(progress: ProgressFn | None, total: int) -> StepReport:
    """A StepReport that sends `progress(done, total, "step <id> <status>")` as steps finish."""
    count = 0

    async def report(step: StepResult) -> None:
        nonlocal count
        count += 1
        if progress is None:
            return
        try:
            await progress(count, max(total, count), f"step {step.id} {step.status}")
        except Exception as exc:  # a client gone away must not fail the plan
            log.warning("progress notification failed: %s: %s", type(exc).__name__, exc)

    return report


def as_call_result(result: PlanResult) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=summary(result))],
        structured_content=result.to_json(),
        is_error=result.status == "failed",
    )


def summary(result: PlanResult) -> str:
    """A few lines for people: the plan's status, one line per step, the notices."""
    counts = Counter(s.status for s in result.steps)
    tally = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no steps"
    lines = [f"{result.pattern} plan {result.status}: {tally}"]
    for step in result.steps:
        detail = step.error if step.error else step.text
        line = f"- {step.id} ({step.tool}): {step.status}"
        flat = " ".join((detail or "").split())  # multi-line text (JSON, tables) on one line
        if flat:
            line += f": {flat[:SUMMARY_CHARS]}{'…' if len(flat) > SUMMARY_CHARS else ''}"
        lines.append(line)
    lines += [f"note: {notice}" for notice in result.notices]
    return "\n".join(lines)


def invalid(problems: list[str]) -> types.CallToolResult:
    listed = "\n".join(f"- {p}" for p in problems)
    return error_result(f"plan not run, nothing was called; {len(problems)} problem(s):\n{listed}")


def error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)
