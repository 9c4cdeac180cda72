"""Auto: picks a pattern from the plan's shape, following the seed's selection guide.

In order: a step whose tool is a glob -> broadcast (one call, many backends);
any `depends_on` or `compensate` -> coordinated (a multi-server operation); a
single step, or steps that refer to each other -> sequential (a simple task);
otherwise the steps are independent -> parallel. Fallback is never guessed:
alternatives are an intent the shape cannot show. The first notice says which
pattern ran and why; `pattern` in the result is the one chosen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from gateway.patterns import references
from gateway.patterns.base import Pattern, Toolbox
from gateway.patterns.plan import Plan, PlanResult, StepReport
from gateway.patterns.validation import is_glob


def choose(plan: Plan) -> tuple[str, str]:
    """The pattern for this plan's shape, and why (one clause)."""
    globs = [s for s in plan.steps if is_glob(s.tool)]
    if globs:
        return "broadcast", f"step {globs[0].id!r} names a glob ({globs[0].tool})"
    if any(s.depends_on or s.compensate for s in plan.steps):
        return "coordinated", "steps have depends_on or compensate"
    if len(plan.steps) == 1:
        return "sequential", "a single step"
    ids = {s.id for s in plan.steps}
    if any(r.source in ids for s in plan.steps for r in references.find(s.arguments)):
        return "sequential", "steps refer to earlier results"
    return "parallel", f"{len(plan.steps)} independent steps"


class Auto:
    name = "auto"
    description = "picks broadcast, coordinated, sequential or parallel from the plan's shape and says why"

    def __init__(self, patterns: Mapping[str, Pattern]) -> None:
        self.patterns = dict(patterns)

    async def run(self, plan: Plan, toolbox: Toolbox, report: StepReport) -> PlanResult:
        chosen, why = choose(plan)
        result = await self.patterns[chosen].run(dataclasses.replace(plan, pattern=chosen), toolbox, report)
        return dataclasses.replace(result, notices=(f"auto chose {chosen}: {why}", *result.notices))
