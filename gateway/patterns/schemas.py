"""JSON schemas of `gateway__coordinate`: the plan it takes and the result it gives.

Written by hand, not generated, so clients see a flat, precise schema with
descriptions and no `$ref`s. `tests/patterns/test_plan.py` checks that they
agree with the pydantic models in `gateway.patterns.plan`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from gateway.patterns.plan import DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT_S, MAX_STEPS, STEP_ID_PATTERN

_ARGUMENTS: dict[str, Any] = {
    "type": "object",
    "description": (
        "Arguments of the call. A string may hold references to earlier results: {{ id.text }}, "
        "{{ id.structured.a.b }} (list items by index: items.0); a string that is exactly one "
        "reference takes the JSON value itself."
    ),
}

STEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tool"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": STEP_ID_PATTERN,
            "not": {"const": "input"},
            "description": "Name other steps use in depends_on and references; default s1, s2, ... by position.",
        },
        "tool": {
            "type": "string",
            "minLength": 1,
            "description": "Exposed tool name (time__get_current_time); a glob (*__search) for broadcast.",
        },
        "arguments": _ARGUMENTS,
        "depends_on": {
            "type": "array",
            "items": {"type": "string"},
            "uniqueItems": True,
            "description": "Ids of steps that must succeed first (coordinated).",
        },
        "compensate": {
            "type": "object",
            "additionalProperties": False,
            "required": ["tool"],
            "description": "The call that undoes this step if the coordinated plan fails later.",
            "properties": {"tool": {"type": "string", "minLength": 1}, "arguments": _ARGUMENTS},
        },
        "timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Longest this step may take; never more than what is left of the plan's time.",
        },
    },
}

PLAN_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["steps"],
    "properties": {
        "pattern": {
            "type": "string",
            "default": "auto",
            "description": "How to run the steps; auto picks one from the plan's shape.",
        },
        "steps": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS, "items": STEP_SCHEMA},
        "max_concurrency": {
            "type": "integer",
            "minimum": 1,
            "maximum": 64,
            "default": DEFAULT_MAX_CONCURRENCY,
            "description": "Most calls in flight at once.",
        },
        "timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 3600,
            "default": DEFAULT_TIMEOUT_S,
            "description": "Deadline of the whole plan, in seconds.",
        },
        "on_error": {
            "enum": ["stop", "continue"],
            "default": "stop",
            "description": "stop: a failed step ends the plan; continue: the other steps still run.",
        },
    },
}
"""The plan, with `pattern` open; `plan_input_schema` fills in the registered names."""

STEP_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "tool", "backend", "status", "duration_ms", "content", "structured", "error"],
    "properties": {
        "id": {"type": "string"},
        "tool": {"type": "string"},
        "backend": {"type": ["string", "null"]},
        "status": {"enum": ["ok", "error", "skipped", "timeout", "compensated"]},
        "duration_ms": {"type": "number", "minimum": 0},
        "attempts": {"type": "integer", "minimum": 0},
        "content": {"type": "array", "items": {"type": "object", "required": ["type"]}},
        "structured": {"type": ["object", "null"]},
        "error": {"type": ["string", "null"]},
    },
}

PLAN_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["pattern", "status", "steps", "notices"],
    "properties": {
        "pattern": {"type": "string", "description": "The pattern that ran (auto says which it chose)."},
        "status": {"enum": ["ok", "partial", "degraded", "failed"]},
        "steps": {"type": "array", "items": STEP_RESULT_SCHEMA},
        "notices": {"type": "array", "items": {"type": "string"}},
    },
}


def plan_input_schema(patterns: Mapping[str, str]) -> dict[str, Any]:
    """PLAN_INPUT_SCHEMA with `pattern` limited to the registered names (name -> description)."""
    schema = copy.deepcopy(PLAN_INPUT_SCHEMA)
    prop = schema["properties"]["pattern"]
    prop["enum"] = sorted(patterns)
    listed = "; ".join(f"{name}: {patterns[name]}" for name in sorted(patterns))
    prop["description"] = f"How to run the steps. {listed}"
    if "auto" not in patterns:
        del prop["default"]
        schema["required"] = ["pattern", "steps"]
    return schema
