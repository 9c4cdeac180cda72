"""Fallback (graceful degradation): the steps are alternatives, tried in order.

An alternative whose backend is known to be unavailable is `skipped` at once,
with the reason, without waiting on it. The first alternative that succeeds
wins; the ones after it are never called (`skipped`, "not needed"). The plan is
`ok` when the first alternative won, `degraded` when a later one did, `failed`
when none did; the notices say which alternatives were passed over and why.

No retries here: the next alternative is the retry. Give each alternative a
`timeout_s` so a slow one leaves time for the rest of the plan.
"""

from __future__ import annotations

from gateway.patterns.base import Toolbox
from gateway.patterns.plan import Plan, PlanResult, PlanStatus, StepReport, StepResult
from gateway.patterns.steps import Deadline, run_step, skipped


class Fallback:
    name = "fallback"
    description = "alternatives in order; unavailable backends skipped at once; the first success wins"

    async def run(self, plan: Plan, toolbox: Toolbox, report: StepReport) -> PlanResult:
        deadline = Deadline.after(plan.timeout_s)
        steps: list[StepResult] = []
        winner: StepResult | None = None
        for step in plan.steps:
            info = toolbox.lookup(step.tool)
            backend = info.backend if info else None
            down = toolbox.unavailable(backend) if backend else None
            if winner is not None:
                result = skipped(step, backend, f"not needed: {winner.id!r} succeeded")
            elif down is not None:
                result = skipped(step, backend, f"backend {backend!r} unavailable: {down}")
            else:
                result = await run_step(step, toolbox, deadline, {}, plan.inputs, retry=False)
                if result.status == "ok":
                    winner = result
            steps.append(result)
            await report(result)
        before = steps[: steps.index(winner)] if winner else steps
        notices = [f"alternative {s.id!r} ({s.tool}) {s.status}: {s.error}" for s in before]
        status: PlanStatus = "ok"
        if winner is None:
            notices.append("no alternative succeeded")
            status = "failed"
        elif before:
            notices.append(f"served by alternative {winner.id!r} ({winner.tool})")
            status = "degraded"
        return PlanResult(self.name, status, tuple(steps), tuple(notices))
