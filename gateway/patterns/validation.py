"""Whole-plan checks, made before any step runs.

Every problem is collected (not just the first) and each names its step:
unknown pattern, reserved or duplicate id, unknown tool (a glob outside
broadcast), `depends_on` naming a missing or later step, a cycle, and a
reference the pattern cannot satisfy. Which references and dependencies a
pattern allows:

| pattern     | references to           | depends_on      | compensate |
| ----------- | ----------------------- | --------------- | ---------- |
| sequential  | earlier steps           | earlier steps   | no         |
| coordinated | its (transitive) deps   | any other step  | yes        |
| parallel, fallback, broadcast | none  | none            | no         |
| a plugin's  | any other step          | any other step  | yes        |

A `compensate` may also refer to its own step's result (undo what it made).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.patterns import references
from gateway.patterns.base import Toolbox
from gateway.patterns.plan import Plan, Step

Allowed = Literal["earlier", "dependency", "any", "none"]


@dataclass(frozen=True)
class Rules:
    refs: Allowed
    depends_on: Allowed
    compensate: bool


RULES = {
    "sequential": Rules(refs="earlier", depends_on="earlier", compensate=False),
    "coordinated": Rules(refs="dependency", depends_on="any", compensate=True),
    "parallel": Rules(refs="none", depends_on="none", compensate=False),
    "fallback": Rules(refs="none", depends_on="none", compensate=False),
    "broadcast": Rules(refs="none", depends_on="none", compensate=False),
}
PLUGIN_RULES = Rules(refs="any", depends_on="any", compensate=True)
_WHY_NONE = {
    "parallel": "parallel steps run independently",
    "fallback": "fallback steps are alternatives",
    "broadcast": "broadcast has one step",
}


def is_glob(tool: str) -> bool:
    return any(c in tool for c in "*?[")


def validate(plan: Plan, toolbox: Toolbox | None, *, patterns: Collection[str], runs_as: str) -> list[str]:
    """Every problem of the plan, each naming its step; empty when it may run.

    :param patterns: the registered pattern names.
    :param runs_as: the pattern whose rules apply (for `auto`, the one it chose).
    :param toolbox: where tools are looked up; None checks only the plan's own shape.
    """
    problems: list[str] = []
    if plan.pattern not in patterns:
        problems.append(f"unknown pattern {plan.pattern!r}; choose one of {', '.join(sorted(patterns))}")
    rules = RULES.get(runs_as, PLUGIN_RULES)
    if runs_as == "broadcast" and len(plan.steps) != 1:
        problems.append(f"broadcast takes exactly one step (its tool may be a glob), not {len(plan.steps)}")
    position: dict[str, int] = {}
    for n, step in enumerate(plan.steps):
        if step.id == references.INPUT:
            problems.append("step 'input': the id 'input' is reserved for route inputs; rename the step")
        if step.id in position:
            problems.append(f"step {step.id!r}: duplicate id (steps #{position[step.id] + 1} and #{n + 1})")
        else:
            position[step.id] = n
    by_id = {s.id: s for s in plan.steps}
    for step in plan.steps:
        problems += _tool(step, step.tool, toolbox, glob_ok=runs_as == "broadcast")
        problems += _depends_on(step, position, rules, runs_as)
        if step.compensate is not None:
            if not rules.compensate:
                problems.append(f"step {step.id!r}: compensate runs only in coordinated plans, not {runs_as}")
            problems += _tool(step, step.compensate.tool, toolbox, glob_ok=False, what="compensate tool")
        deps = ancestors(step.id, by_id)
        problems += _references(step, step.arguments, plan, position, deps, rules, runs_as)
        if step.compensate is not None:
            undo = deps | {step.id}
            problems += _references(step, step.compensate.arguments, plan, position, undo, rules, runs_as)
    if rules.depends_on == "any":
        problems += [f"steps {' -> '.join(map(repr, c))} form a cycle" for c in cycles(plan.steps)]
    return problems


def _tool(step: Step, tool: str, toolbox: Toolbox | None, *, glob_ok: bool, what: str = "tool") -> list[str]:
    if is_glob(tool):
        if not glob_ok:
            return [f"step {step.id!r}: {what} {tool!r} is a glob; only the broadcast pattern takes globs"]
        if toolbox is not None and not toolbox.matching(tool):
            return [f"step {step.id!r}: no tool matches {tool!r}"]
        return []
    if toolbox is None or toolbox.lookup(tool) is not None:
        return []
    close = difflib.get_close_matches(tool, [t.name for t in toolbox.matching("*")], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return [f"step {step.id!r}: unknown {what} {tool!r}{hint}"]


def _depends_on(step: Step, position: dict[str, int], rules: Rules, runs_as: str) -> list[str]:
    if step.depends_on and rules.depends_on == "none":
        return [f"step {step.id!r}: depends_on needs the coordinated pattern ({_WHY_NONE[runs_as]})"]
    problems = []
    for dep in step.depends_on:
        if dep == step.id:
            problems.append(f"step {step.id!r}: depends on itself")
        elif dep not in position:
            problems.append(f"step {step.id!r}: depends on unknown step {dep!r}")
        elif rules.depends_on == "earlier" and position[dep] > position[step.id]:
            problems.append(f"step {step.id!r}: depends on {dep!r}, which comes later in a sequential plan")
    return problems


def _references(
    step: Step,
    arguments: object,
    plan: Plan,
    position: dict[str, int],
    deps: set[str],
    rules: Rules,
    runs_as: str,
) -> list[str]:
    problems = []
    for expression in references.scan(arguments):
        try:
            ref = references.parse(expression)
        except ValueError as exc:
            problems.append(f"step {step.id!r}: {exc}")
            continue
        why = _reference_problem(step, ref, plan, position, deps, rules, runs_as)
        if why:
            problems.append(f"step {step.id!r}: {ref}: {why}")
    return problems


def _reference_problem(
    step: Step,
    ref: references.Reference,
    plan: Plan,
    position: dict[str, int],
    deps: set[str],
    rules: Rules,
    runs_as: str,
) -> str | None:
    if ref.source == references.INPUT:
        if plan.inputs is None:
            return "input references are only for routes ([routes.*] in the config)"
        return None if ref.path else "say which input: {{ input.name }}"
    if ref.source not in position:
        return f"refers to unknown step {ref.source!r}"
    if not ref.path or ref.path[0] not in ("text", "structured"):
        return f"say which part of {ref.source!r}: {{{{ {ref.source}.text }}}} or {{{{ {ref.source}.structured }}}}"
    if ref.path[0] == "text" and len(ref.path) > 1:
        return "text has no parts; use structured.<key> for a value inside the result"
    if ref.source in deps:  # a dependency, or the step itself inside its compensate
        return None
    if ref.source == step.id:
        return "refers to its own result"
    if rules.refs == "none":
        return f"references between steps need sequential or coordinated ({_WHY_NONE[runs_as]})"
    if rules.refs == "earlier" and position[ref.source] > position[step.id]:
        return f"refers to step {ref.source!r}, which is not earlier"
    if rules.refs == "dependency":
        return f"refers to step {ref.source!r}, which is not among its depends_on (directly or through them)"
    return None


def ancestors(step_id: str, by_id: dict[str, Step]) -> set[str]:
    """Every step that `step_id` depends on, directly or through others (cycles tolerated)."""
    found: set[str] = set()
    todo = list(by_id[step_id].depends_on) if step_id in by_id else []
    while todo:
        dep = todo.pop()
        if dep in found or dep not in by_id:
            continue
        found.add(dep)
        todo.extend(by_id[dep].depends_on)
    found.discard(step_id)
    return found


def cycles(steps: Sequence[Step]) -> list[list[str]]:
    """Each cycle of `depends_on` once, as a path that returns to its start."""
    by_id = {s.id: s for s in steps}
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in by_id[node].depends_on:
            if dep not in by_id or dep == node:
                continue
            if state.get(dep) == "open":
                found.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = "done"

    for step in steps:
        if step.id not in state:
            visit(step.id, [step.id])
    return found
