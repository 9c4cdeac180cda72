"""The plan a client hands to `gateway__coordinate` (or a route declares), and what running it gives.

Pydantic models read the plan at the edge (`parse_plan`); inside, a plan is a
frozen `Plan` of `Step`s. Running one gives a `PlanResult` of `StepResult`s,
whose `to_json()` is the `structuredContent` clients get. Whether the plan
makes sense as a whole (tools exist, ids unique, no cycle, references point
back) is checked in `gateway.patterns.validation` before anything runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import mcp_types as types
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import GatewayError

StepStatus = Literal["ok", "error", "skipped", "timeout", "compensated"]
PlanStatus = Literal["ok", "partial", "degraded", "failed"]
OnError = Literal["stop", "continue"]

STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_TIMEOUT_S = 60.0
MAX_STEPS = 100


class PlanError(GatewayError):
    """A plan cannot run. Holds every problem found, each naming its step."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


# --- the edge: what clients and config files write -------------------------------------------------


class CompensateModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class StepModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, pattern=STEP_ID_PATTERN)
    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    compensate: CompensateModel | None = None
    timeout_s: float | None = Field(default=None, gt=0)


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: str = "auto"
    steps: list[StepModel] = Field(min_length=1, max_length=MAX_STEPS)
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, ge=1, le=64)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=3600)
    on_error: OnError = "stop"


# --- inside: frozen values -------------------------------------------------------------------------


@dataclass(frozen=True)
class Compensation:
    """The call that undoes a step (coordinated plans only)."""

    tool: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    id: str
    tool: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    compensate: Compensation | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class Plan:
    pattern: str
    steps: tuple[Step, ...]
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    timeout_s: float = DEFAULT_TIMEOUT_S
    on_error: OnError = "stop"
    inputs: Mapping[str, Any] | None = None
    """A route's inputs (what `{{ input.x }}` reads); None for a `gateway__coordinate` plan."""


@dataclass(frozen=True)
class StepResult:
    id: str
    tool: str
    backend: str | None
    status: StepStatus
    duration_ms: float = 0.0
    content: tuple[types.ContentBlock, ...] = ()
    structured: Mapping[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    """Calls made: 0 when skipped, 2 when a read-only or idempotent tool was retried."""

    @property
    def text(self) -> str | None:
        """The text content, blocks joined by newlines; None when the step has no text block."""
        texts = [c.text for c in self.content if isinstance(c, types.TextContent)]
        return "\n".join(texts) if texts else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tool": self.tool,
            "backend": self.backend,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 1),
            "attempts": self.attempts,
            "content": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in self.content],
            "structured": dict(self.structured) if self.structured is not None else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class PlanResult:
    pattern: str
    status: PlanStatus
    steps: tuple[StepResult, ...]
    notices: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "status": self.status,
            "steps": [s.to_json() for s in self.steps],
            "notices": list(self.notices),
        }


StepReport = Callable[[StepResult], Awaitable[None]]
"""`await report(step)` as each step finishes (the coordinator turns it into progress)."""


def overall(steps: Sequence[StepResult]) -> PlanStatus:
    """ok when every step is ok, failed when none is, partial in between."""
    good = sum(s.status == "ok" for s in steps)
    if good == len(steps):
        return "ok"
    return "failed" if good == 0 else "partial"


# --- reading ---------------------------------------------------------------------------------------


def parse_plan(arguments: Mapping[str, Any]) -> Plan:
    """Read a plan from JSON. Raises PlanError with one problem per mistake, each naming its step."""
    try:
        model = PlanModel.model_validate(dict(arguments))
    except ValidationError as exc:
        raise PlanError(describe_errors(exc, arguments.get("steps"))) from None
    return build_plan(model)


def build_plan(model: PlanModel, *, inputs: Mapping[str, Any] | None = None) -> Plan:
    """A `Plan` from a validated model; a step without an id gets `s<position>` (`s1`, `s2`, ...)."""
    return Plan(
        pattern=model.pattern,
        steps=tuple(
            Step(
                id=s.id or f"s{n}",
                tool=s.tool,
                arguments=s.arguments,
                depends_on=tuple(s.depends_on),
                compensate=Compensation(s.compensate.tool, s.compensate.arguments) if s.compensate else None,
                timeout_s=s.timeout_s,
            )
            for n, s in enumerate(model.steps, start=1)
        ),
        max_concurrency=model.max_concurrency,
        timeout_s=model.timeout_s,
        on_error=model.on_error,
        inputs=inputs,
    )


def describe_errors(exc: ValidationError, raw_steps: Any) -> list[str]:
    """pydantic's errors as `step <id>: <field>: <message>` (or `<field>: <message>` for plan keys)."""
    problems = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            where = f"step {step_label(raw_steps, loc[1])}: "
            loc = loc[2:]
        key = ".".join(str(part) for part in loc)
        problems.append(f"{where}{key + ': ' if key else ''}{error['msg']}")
    return problems


def step_label(raw_steps: Any, index: int) -> str:
    """How to name the step at `index` in a message: its id as written, else `s<n>` (the default id)."""
    if isinstance(raw_steps, list) and index < len(raw_steps) and isinstance(raw_steps[index], Mapping):
        given = raw_steps[index].get("id")
        if isinstance(given, str) and given:
            return repr(given)
    return repr(f"s{index + 1}")
