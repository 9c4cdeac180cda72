"""Parallel: every step at once, bounded by `max_concurrency`, joined at one synchronisation point.

Steps are independent (no references between them, no `depends_on`); each
succeeds or fails on its own, so `on_error` does not stop the others. Wall time
tracks the slowest step, not the sum. The plan is `ok` when every step is,
`failed` when none is, `partial` in between.
"""

from __future__ import annotations

import anyio

from gateway.patterns.base import Toolbox
from gateway.patterns.plan import Plan, PlanResult, Step, StepReport, StepResult, overall
from gateway.patterns.steps import Deadline, run_step


class Parallel:
    name = "parallel"
    description = "independent steps at once (at most max_concurrency in flight), joined when all are done"

    async def run(self, plan: Plan, toolbox: Toolbox, report: StepReport) -> PlanResult:
        deadline = Deadline.after(plan.timeout_s)
        limiter = anyio.CapacityLimiter(plan.max_concurrency)
        done: dict[str, StepResult] = {}

        async def one(step: Step) -> None:
            async with limiter:
                result = await run_step(step, toolbox, deadline, {}, plan.inputs)
            done[step.id] = result
            await report(result)

        async with anyio.create_task_group() as tg:  # the synchronisation point
            for step in plan.steps:
                tg.start_soon(one, step)
        steps = tuple(done[s.id] for s in plan.steps)
        return PlanResult(self.name, overall(steps), steps)
