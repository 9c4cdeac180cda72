"""Sequential: steps one after another, each able to use earlier results.

A step may refer to any earlier step (`{{ now.text }}`). With `on_error =
"stop"` (the default) the first step that does not succeed ends the plan: the
rest are `skipped` and the plan is `failed`. With `"continue"` every step gets
its turn (one that needs a failed step is `skipped`) and the plan is `partial`
when some succeeded.
"""

from __future__ import annotations

from gateway.patterns.base import Toolbox
from gateway.patterns.plan import Plan, PlanResult, StepReport, StepResult, overall
from gateway.patterns.steps import Deadline, run_step, skipped


class Sequential:
    name = "sequential"
    description = "steps in order, each may use earlier results; stops at the first failure unless continue"

    async def run(self, plan: Plan, toolbox: Toolbox, report: StepReport) -> PlanResult:
        deadline = Deadline.after(plan.timeout_s)
        done: dict[str, StepResult] = {}
        stopped_by: str | None = None
        for step in plan.steps:
            if stopped_by is not None:
                info = toolbox.lookup(step.tool)
                result = skipped(step, info.backend if info else None, f"not run: step {stopped_by!r} failed")
            else:
                result = await run_step(step, toolbox, deadline, done, plan.inputs)
                if result.status != "ok" and plan.on_error == "stop":
                    stopped_by = step.id
            done[step.id] = result
            await report(result)
        steps = tuple(done.values())
        notices: tuple[str, ...] = ()
        if stopped_by is not None:
            notices = (f"stopped at step {stopped_by!r} ({done[stopped_by].status}); on_error is stop",)
        return PlanResult(self.name, "failed" if stopped_by else overall(steps), steps, notices)
