"""Coordinated (multi-server): steps form a graph through `depends_on`, run as parallel as it allows.

A step starts as soon as every step it depends on has finished (at most
`max_concurrency` in flight); it may refer to the results of its dependencies,
direct or transitive.

When a step fails (`on_error = "stop"`, the default), no further step starts;
steps already running finish (a cancelled write may or may not have happened,
so it could not be undone reliably), then the `compensate` calls of every step
that succeeded run one at a time, in reverse order of completion. A step whose
compensation succeeded is `compensated`; one whose compensation failed keeps
status `ok` (its effect stays) with the failure in its `error` and in the
notices. The plan is `failed`. Compensations are shielded from cancellation
and each gets `min(timeout_s, 30)` seconds of its own, since undoing matters
most once the plan's own time has run out.

With `on_error = "continue"` nothing is compensated: steps that need a failed
step are `skipped`, the others run, and the plan is `partial`.
"""

from __future__ import annotations

import dataclasses

import anyio

from gateway.patterns import references
from gateway.patterns.base import Toolbox
from gateway.patterns.plan import Compensation, Plan, PlanResult, PlanStatus, Step, StepReport, StepResult, overall
from gateway.patterns.steps import Deadline, call, retry_safe, run_step, skipped, sources

COMPENSATE_TIMEOUT_S = 30.0


class Coordinated:
    name = "coordinated"
    description = "a depends_on graph run with maximal parallelism; on failure, compensate in reverse"

    async def run(self, plan: Plan, toolbox: Toolbox, report: StepReport) -> PlanResult:
        deadline = Deadline.after(plan.timeout_s)
        limiter = anyio.CapacityLimiter(plan.max_concurrency)
        done: dict[str, StepResult] = {}
        finished: list[str] = []  # ids in order of completion
        waiting = list(plan.steps)
        failed_at: list[str] = []
        stop = plan.on_error == "stop"

        def backend(step: Step) -> str | None:
            info = toolbox.lookup(step.tool)
            return info.backend if info else None

        async def one(step: Step) -> None:
            async with limiter:
                if stop and failed_at:
                    result = skipped(step, backend(step), f"not run: step {failed_at[0]!r} failed")
                else:
                    result = await run_step(step, toolbox, deadline, done, plan.inputs)
                    finished.append(step.id)
            done[step.id] = result
            await report(result)
            if result.status != "ok" and not failed_at:
                failed_at.append(step.id)
            launch()

        async with anyio.create_task_group() as tg:

            def launch() -> None:
                if stop and failed_at:
                    return
                for step in [s for s in waiting if all(d in done for d in s.depends_on)]:
                    waiting.remove(step)
                    tg.start_soon(one, step)

            launch()
        for step in waiting:
            done[step.id] = skipped(step, backend(step), f"not run: step {failed_at[0]!r} failed")
            await report(done[step.id])

        notices: list[str] = []
        if stop and failed_at:
            first = done[failed_at[0]]
            notices.append(f"step {first.id!r} {first.status}: {first.error}; undoing the steps that succeeded")
            notices += await self._compensate(plan, toolbox, done, finished, report)
            status: PlanStatus = "failed"
        else:
            status = overall(list(done.values()))
        steps = tuple(done[s.id] for s in plan.steps)
        return PlanResult(self.name, status, steps, tuple(notices))

    async def _compensate(
        self,
        plan: Plan,
        toolbox: Toolbox,
        done: dict[str, StepResult],
        finished: list[str],
        report: StepReport,
    ) -> list[str]:
        """Undo the succeeded steps, last finished first. Returns the notices to add."""
        notices: list[str] = []
        by_id = {s.id: s for s in plan.steps}
        for step_id in reversed(finished):
            step, result = by_id[step_id], done[step_id]
            if result.status == "timeout" and step.compensate is not None:
                notices.append(f"step {step_id!r} timed out: its effect is unknown, so it was not compensated")
            if result.status != "ok":
                continue
            if step.compensate is None:
                info = toolbox.lookup(step.tool)
                if info is None or not retry_safe(info):
                    notices.append(f"step {step_id!r} has no compensate: its effect stays")
                continue
            why = await self._undo(step.compensate, plan, toolbox, done)
            if why is None:
                done[step_id] = dataclasses.replace(result, status="compensated")
            else:
                done[step_id] = dataclasses.replace(result, error=f"compensation failed: {why}")
                notices.append(f"compensation of step {step_id!r} failed, its effect stays: {why}")
            await report(done[step_id])
        return notices

    async def _undo(
        self, compensate: Compensation, plan: Plan, toolbox: Toolbox, done: dict[str, StepResult]
    ) -> str | None:
        """Run one step's compensate; None when it succeeded, else why not."""
        info = toolbox.lookup(compensate.tool)
        if info is None:
            return f"unknown tool {compensate.tool!r}"
        try:
            arguments = references.resolve(compensate.arguments, sources(done, plan.inputs))
        except references.UnresolvedReference as exc:
            return str(exc)
        limit = min(plan.timeout_s, COMPENSATE_TIMEOUT_S)
        with anyio.CancelScope(shield=True):
            outcome = await call(toolbox, info, arguments, limit, f"{limit:g} s", retry=True)
        return None if outcome.status == "ok" else f"{info.name} {outcome.status}: {outcome.error}"
