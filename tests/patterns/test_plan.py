"""The plan's pieces on their own: schemas against models, references, auto's choice,
and patterns registered by a plugin, run in-process through `gateway.testing`."""

from __future__ import annotations

import types as pytypes
from collections.abc import Callable
from typing import Any

import mcp_types as types
import pytest
from conftest import echo_backend

from gateway import Deadline, Pattern, Plan, PlanResult, StepReport, Toolbox, hookimpl, run_step
from gateway.patterns import references
from gateway.patterns.auto import choose
from gateway.patterns.coordinator import RouteConfig
from gateway.patterns.plan import CompensateModel, PlanModel, StepModel, parse_plan
from gateway.patterns.schemas import PLAN_INPUT_SCHEMA, PLAN_OUTPUT_SCHEMA, STEP_SCHEMA
from gateway.testing import connected


def test_the_hand_written_schemas_agree_with_the_models() -> None:
    assert set(PLAN_INPUT_SCHEMA["properties"]) == set(PlanModel.model_fields)
    assert set(STEP_SCHEMA["properties"]) == set(StepModel.model_fields)
    assert set(STEP_SCHEMA["properties"]["compensate"]["properties"]) == set(CompensateModel.model_fields)
    required = {n for n, f in PlanModel.model_fields.items() if f.is_required()}
    assert set(PLAN_INPUT_SCHEMA["required"]) == required
    assert set(STEP_SCHEMA["required"]) == {n for n, f in StepModel.model_fields.items() if f.is_required()}
    for name, field in PlanModel.model_fields.items():
        if not field.is_required() and name != "steps":
            assert PLAN_INPUT_SCHEMA["properties"][name]["default"] == field.default, name
    step_fields = set(PLAN_OUTPUT_SCHEMA["properties"]["steps"]["items"]["properties"])
    assert step_fields == {"id", "tool", "backend", "status", "duration_ms", "attempts", "content", "structured",
                           "error"}


SOURCES = {"now": {"text": "12:00", "structured": {"n": 3, "items": [{"name": "a"}, {"name": "b"}]}},
           "input": {"zone": "UTC"}}


@pytest.mark.parametrize(("value", "expected"), [
    ("{{ now.structured.n }}", 3),
    ("  {{ now.structured.items }} ", [{"name": "a"}, {"name": "b"}]),
    ("at {{ now.text }} in {{ input.zone }}", "at 12:00 in UTC"),
    ("n={{ now.structured.n }}", "n=3"),
    ({"deep": ["{{ now.structured.items.1.name }}"]}, {"deep": ["b"]}),
    ("no references", "no references"),
    (7, 7),
])
def test_references_resolve_to_json_values_or_text(value: Any, expected: Any) -> None:
    assert references.resolve(value, SOURCES) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("{{ now.structured.missing }}", "{{ now.structured.missing }}: now.structured has no 'missing'"),
    ("{{ now.structured.items.5 }}", "now.structured.items has 2 items, no item 5"),
    ("{{ now.text.x }}", "now.text is a str, it has no 'x'"),
    ("{{ later.text }}", "no result named 'later'"),
])
def test_a_reference_to_nothing_names_its_path(value: str, message: str) -> None:
    with pytest.raises(references.UnresolvedReference) as caught:
        references.resolve(value, SOURCES)
    assert message in str(caught.value)


def plan(*steps: dict[str, Any], **keys: Any) -> Plan:
    return parse_plan({"steps": list(steps), **keys})


@pytest.mark.parametrize(("p", "chosen"), [
    (plan({"tool": "*__search"}), "broadcast"),
    (plan({"id": "a", "tool": "x"}, {"tool": "y", "depends_on": ["a"]}), "coordinated"),
    (plan({"tool": "x", "compensate": {"tool": "z"}}), "coordinated"),
    (plan({"tool": "x"}), "sequential"),
    (plan({"id": "a", "tool": "x"}, {"tool": "y", "arguments": {"q": "{{ a.text }}"}}), "sequential"),
    (plan({"tool": "x"}, {"tool": "y"}, {"tool": "z"}), "parallel"),
])
def test_auto_follows_the_selection_guide(p: Plan, chosen: str) -> None:
    assert choose(p)[0] == chosen


def test_steps_without_ids_are_numbered_and_model_errors_name_the_step() -> None:
    assert [s.id for s in plan({"tool": "a"}, {"tool": "b"}).steps] == ["s1", "s2"]
    with pytest.raises(Exception, match=r"step 's2': depends_on"):
        plan({"tool": "a"}, {"tool": "b", "depends_on": "a"})


def test_route_keys_are_checked() -> None:
    route = RouteConfig.model_validate({"steps": [{"tool": "a", "arguments": {"q": "{{ input.q }}"}}]})
    assert route.pattern == "auto"
    with pytest.raises(ValueError, match="steps"):
        RouteConfig.model_validate({"pattern": "sequential"})


# -- patterns from a plugin


class Reverse:
    """A third-party pattern: runs the steps last to first."""

    name = "reverse"
    description = "steps from last to first"

    async def run(self, plan: Plan, toolbox: Toolbox, report: StepReport) -> PlanResult:
        deadline = Deadline.after(plan.timeout_s)
        done = {}
        for step in reversed(plan.steps):
            done[step.id] = await run_step(step, toolbox, deadline, done, plan.inputs)
            await report(done[step.id])
        return PlanResult(self.name, "ok", tuple(done.values()), ("ran backwards",))


class Explodes:
    name = "explodes"
    description = "raises"

    async def run(self, plan: Plan, toolbox: Toolbox, report: StepReport) -> PlanResult:
        raise RuntimeError("kaboom")


def plugin_with(*patterns: Pattern) -> pytypes.SimpleNamespace:
    @hookimpl
    def register_patterns(register: Callable[[Pattern], None]) -> None:
        for pattern in patterns:
            register(pattern)

    return pytypes.SimpleNamespace(register_patterns=register_patterns)


def texts(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_a_plugin_registers_a_pattern_that_plans_and_routes_can_choose() -> None:
    config = {"backends": {"echo": echo_backend("echo")},
              "routes": {"backwards": {"pattern": "reverse", "input_schema": {
                  "type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
                  "steps": [{"id": "a", "tool": "echo__echo", "arguments": {"message": "{{ input.word }}"}},
                            {"id": "b", "tool": "echo__echo", "arguments": {"message": "second"}}]}}}
    async with connected(config, plugins=[("reverse", plugin_with(Reverse()))]) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "reverse" in tools["gateway__coordinate"].input_schema["properties"]["pattern"]["enum"]
        assert tools["backwards"].input_schema["required"] == ["word"]
        result = await client.call_tool("gateway__coordinate", {"pattern": "reverse", "steps": [
            {"id": "a", "tool": "echo__echo", "arguments": {"message": "1"}},
            {"id": "b", "tool": "echo__echo", "arguments": {"message": "2"}}]})
        out = result.structured_content or {}
        assert [s["id"] for s in out["steps"]] == ["b", "a"]
        assert out["notices"] == ["ran backwards"]
        routed = (await client.call_tool("backwards", {"word": "hi"})).structured_content or {}
        assert [s["structured"]["echo"] for s in routed["steps"]] == ["second", "hi"]


async def test_a_pattern_that_raises_costs_one_error_and_the_gateway_serves_on() -> None:
    config = {"backends": {"echo": echo_backend("echo")}}
    async with connected(config, plugins=[("explodes", plugin_with(Explodes()))]) as client:
        result = await client.call_tool("gateway__coordinate", {"pattern": "explodes", "steps": [
            {"tool": "echo__echo", "arguments": {"message": "1"}}]})
        assert result.is_error
        assert "pattern 'explodes' failed: RuntimeError: kaboom" in texts(result)
        assert texts(await client.call_tool("echo__echo", {"message": "still here"})) == "still here"


async def test_without_any_pattern_plugin_there_is_no_coordinate_tool() -> None:
    async with connected({"backends": {"echo": echo_backend("echo")}}, entry_points=False,
                         plugins=[("stdio", __import__("manifold_stdio.plugin").plugin)]) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert "gateway__coordinate" not in names and "echo__echo" in names
