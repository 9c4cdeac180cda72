"""Broadcast: one call sent to every matching tool whose backend is available; results merged.

The plan has one step; its `tool` may be a glob (`*__search`). Every exposed
tool matching it becomes a step of its own, `<id>.<backend>` (plus the tool
name when one backend has several matches), called in parallel within
`max_concurrency`. A match whose backend is unavailable is `skipped` with the
reason, without a call. The plan is `ok` when every match succeeded,
`degraded` when the only misses are unavailable backends, `partial` when some
call failed, `failed` when none succeeded.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import anyio

from gateway.patterns.base import Toolbox, ToolInfo
from gateway.patterns.plan import Plan, PlanResult, PlanStatus, Step, StepReport, StepResult
from gateway.patterns.steps import Deadline, run_step, skipped


def expand(step: Step, matches: list[ToolInfo]) -> list[Step]:
    """One step per matched tool, named after its backend."""
    per_backend = Counter(t.backend for t in matches)
    return [
        dataclasses.replace(
            step,
            id=f"{step.id}.{t.backend}" if per_backend[t.backend] == 1 else f"{step.id}.{t.backend}.{t.name}",
            tool=t.name,
        )
        for t in matches
    ]


class Broadcast:
    name = "broadcast"
    description = "one call (tool may be a glob like *__search) to every matching available backend, merged"

    async def run(self, plan: Plan, toolbox: Toolbox, report: StepReport) -> PlanResult:
        deadline = Deadline.after(plan.timeout_s)
        limiter = anyio.CapacityLimiter(plan.max_concurrency)
        (template,) = plan.steps
        matches = toolbox.matching(template.tool)
        if not matches:
            return PlanResult(self.name, "failed", (), (f"no tool matches {template.tool!r}",))
        steps = expand(template, matches)
        done: dict[str, StepResult] = {}

        async def one(step: Step, backend: str) -> None:
            down = toolbox.unavailable(backend)
            if down is not None:
                result = skipped(step, backend, f"backend {backend!r} unavailable: {down}")
            else:
                async with limiter:
                    result = await run_step(step, toolbox, deadline, {}, plan.inputs)
            done[step.id] = result
            await report(result)

        async with anyio.create_task_group() as tg:
            for step, info in zip(steps, matches, strict=True):
                tg.start_soon(one, step, info.backend)
        results = tuple(done[s.id] for s in steps)
        notices = [f"sent to {len(results)} tool(s) matching {template.tool!r}"]
        notices += [f"{r.id} {r.status}: {r.error}" for r in results if r.status != "ok"]
        return PlanResult(self.name, _status(results), results, tuple(notices))


def _status(results: tuple[StepResult, ...]) -> PlanStatus:
    statuses = {r.status for r in results}
    if statuses == {"ok"}:
        return "ok"
    if "ok" not in statuses:
        return "failed"
    return "degraded" if statuses == {"ok", "skipped"} else "partial"
