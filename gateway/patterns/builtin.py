"""The built-in patterns, registered through `register_patterns` like any plugin's.

Found through the root pyproject's entry point `manifold: patterns`.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.hookspecs import hookimpl
from gateway.patterns.auto import Auto
from gateway.patterns.base import Pattern
from gateway.patterns.broadcast import Broadcast
from gateway.patterns.coordinated import Coordinated
from gateway.patterns.fallback import Fallback
from gateway.patterns.parallel import Parallel
from gateway.patterns.sequential import Sequential


def patterns() -> list[Pattern]:
    """One of each built-in pattern; `auto` delegates to the other five."""
    chosen: list[Pattern] = [Sequential(), Parallel(), Fallback(), Coordinated(), Broadcast()]
    return [*chosen, Auto({p.name: p for p in chosen})]


@hookimpl
def register_patterns(register: Callable[[Pattern], None]) -> None:
    for pattern in patterns():
        register(pattern)
