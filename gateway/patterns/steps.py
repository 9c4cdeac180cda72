"""How one step runs, whatever the pattern: time limit, references, the call, one safe retry.

* **Deadline.** A plan has one deadline. A step gets `min(step timeout_s, what
  is left)`; the same number is passed to `Toolbox.call` so the backend is told
  too. A call still running then is cancelled and the step is `timeout`; a step
  that starts after the deadline is `timeout` without a call.
* **Needs.** A step is `skipped` when a step it depends on or refers to did not
  succeed; a reference into a succeeded step that points at nothing is an
  `error` naming the path.
* **Retries.** Only a tool whose annotations say `readOnlyHint` or
  `idempotentHint` is retried, once, after an error result (never after a
  timeout, never when its backend has meanwhile become unavailable), within the
  same time limit. `StepResult.attempts` says how many calls were made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types

from gateway.patterns import references
from gateway.patterns.base import Toolbox, ToolInfo
from gateway.patterns.plan import Step, StepResult, StepStatus

MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class Deadline:
    """The moment (on anyio's clock) by which a plan must be done."""

    at: float
    timeout_s: float

    @classmethod
    def after(cls, timeout_s: float) -> Deadline:
        return cls(anyio.current_time() + timeout_s, timeout_s)

    def left(self) -> float:
        return max(0.0, self.at - anyio.current_time())

    def limit(self, step_timeout_s: float | None) -> tuple[float, str]:
        """How long a step starting now may take, and what sets that limit (for messages)."""
        left = self.left()
        if step_timeout_s is not None and step_timeout_s <= left:
            return step_timeout_s, f"the step's timeout_s of {step_timeout_s:g} s"
        return left, f"the plan's timeout_s of {self.timeout_s:g} s"


@dataclass(frozen=True)
class Outcome:
    """How one call (with its retry) went."""

    status: StepStatus
    result: types.CallToolResult | None
    error: str | None
    attempts: int


def retry_safe(info: ToolInfo) -> bool:
    hints = info.annotations
    return hints is not None and bool(hints.read_only_hint or hints.idempotent_hint)


def sources(done: Mapping[str, StepResult], inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """What references may read: each finished step as `{text, structured}`, and `input`."""
    view: dict[str, Any] = {}
    for step_id, result in done.items():
        entry: dict[str, Any] = {}
        if result.text is not None:
            entry["text"] = result.text
        if result.structured is not None:
            entry["structured"] = dict(result.structured)
        view[step_id] = entry
    if inputs is not None:
        view[references.INPUT] = dict(inputs)
    return view


def needs(step: Step) -> set[str]:
    """The steps whose success this step needs: its depends_on and every step it refers to."""
    refs = {r.source for r in references.find(step.arguments) if r.source != references.INPUT}
    return set(step.depends_on) | refs


def skipped(step: Step, backend: str | None, why: str) -> StepResult:
    return StepResult(id=step.id, tool=step.tool, backend=backend, status="skipped", error=why)


async def run_step(
    step: Step,
    toolbox: Toolbox,
    deadline: Deadline,
    done: Mapping[str, StepResult],
    inputs: Mapping[str, Any] | None,
    *,
    retry: bool = True,
) -> StepResult:
    """Run one step: check what it needs, resolve its references, call its tool."""
    started = anyio.current_time()
    info = toolbox.lookup(step.tool)
    if info is None:
        return StepResult(step.id, step.tool, None, "error", error=f"unknown tool {step.tool!r}")
    blocked = sorted(d for d in needs(step) if d in done and done[d].status != "ok")
    if blocked:
        listed = ", ".join(f"{d!r} ({done[d].status})" for d in blocked)
        return skipped(step, info.backend, f"not run: needs {listed}")
    try:
        arguments = references.resolve(step.arguments, sources(done, inputs))
    except references.UnresolvedReference as exc:
        return StepResult(step.id, step.tool, info.backend, "error", error=str(exc))
    limit, why = deadline.limit(step.timeout_s)
    outcome = await call(toolbox, info, arguments, limit, why, retry=retry)
    result = outcome.result
    return StepResult(
        id=step.id,
        tool=step.tool,
        backend=info.backend,
        status=outcome.status,
        duration_ms=(anyio.current_time() - started) * 1000,
        content=tuple(result.content) if result else (),
        structured=result.structured_content if result else None,
        error=outcome.error,
        attempts=outcome.attempts,
    )


async def call(
    toolbox: Toolbox, info: ToolInfo, arguments: dict[str, Any], timeout_s: float, why: str, *, retry: bool
) -> Outcome:
    """Call `info`'s tool within `timeout_s` (`why` says what set it); retry once if safe."""
    end = anyio.current_time() + timeout_s
    attempts = 0
    while True:
        left = end - anyio.current_time()
        if left <= 0:
            return Outcome("timeout", None, f"no time left to start: {why} has run out", attempts)
        attempts += 1
        result: types.CallToolResult | None = None
        with anyio.move_on_after(left):
            try:
                result = await toolbox.call(info.name, arguments, timeout_s=left)
            except Exception as exc:  # the toolbox promises results, not exceptions; keep the plan alive
                result = types.CallToolResult(
                    content=[types.TextContent(type="text", text=f"{type(exc).__name__}: {exc}")], is_error=True
                )
        if result is None or (result.is_error and anyio.current_time() >= end):
            return Outcome("timeout", result, f"no answer within {why}", attempts)
        if not result.is_error:
            return Outcome("ok", result, None, attempts)
        if retry and attempts == 1 and retry_safe(info) and toolbox.unavailable(info.backend) is None:
            continue
        return Outcome("error", result, error_text(result), attempts)


def error_text(result: types.CallToolResult) -> str:
    texts = [c.text for c in result.content if isinstance(c, types.TextContent)]
    text = "\n".join(texts).strip() or "the tool returned an error without a message"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
