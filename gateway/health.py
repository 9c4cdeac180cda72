"""Per-backend health: its state, why, since when, and the circuit breaker on its calls.

    starting ──connect ok──► healthy ◄──────────────┐
       │                      │  slow / fewer tools  │ probe ok
       │                      ▼                      │
       │                   degraded                  │
       │                      │ lost / 5 failures    │
       └──connect failed──►  unavailable ──cooldown──┘ (half-open: one call probes)

`disabled` is a backend with `enabled = false`: listed, never started.
Recording a call is O(1) and lock-free; it runs on the call path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    STARTING = "starting"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"
    DISABLED = "disabled"


FAILURES_TO_OPEN = 5
"""Consecutive failed calls (transport errors and timeouts, not isError results) that open the breaker."""
BREAKER_COOLDOWN_S = 5.0
"""How long an open breaker refuses calls before letting one probe through."""
SLOW_MS = 5_000.0
"""Average latency above which a backend is degraded."""
_EWMA = 0.2
CHECK_FAILED = "health check failed"


@dataclass
class Health:
    """One backend's health. Written by its supervisor and by calls; read by /status and routing."""

    backend: str
    type: str
    state: State = State.STARTING
    reason: str = "starting"
    since: float = field(default_factory=time.time)
    last_error: str | None = None
    latency_ms: float | None = None
    restarts: int = 0
    tools: int = 0
    most_tools: int = 0
    failures: int = 0
    breaker_until: float | None = None
    _probing: bool = False

    def set(self, state: State, reason: str) -> bool:
        """Move to `state`; True when the state changed."""
        changed = state != self.state
        if changed:
            self.since = time.time()
        self.state, self.reason = state, reason
        return changed

    def connected(self, tools: int) -> None:
        """The backend (re)connected and listed `tools` tools."""
        self.failures, self.breaker_until, self._probing = 0, None, False
        self.tools = tools
        if tools < self.most_tools:
            self.set(State.DEGRADED, f"lists {tools} tools, had {self.most_tools}")
        else:
            self.set(State.HEALTHY, "ok")
        self.most_tools = max(self.most_tools, tools)

    def check_passed(self) -> None:
        """A health check was answered: undo what failed checks did (not a short listing, not the breaker)."""
        undo = self.state is State.UNAVAILABLE or self.reason.startswith(CHECK_FAILED)
        if undo and self.breaker_until is None:
            self.set(State.HEALTHY, "ok")

    def check_failed(self, why: str) -> None:
        """A health check got no good answer: degraded (a short listing keeps its own reason)."""
        self.last_error = f"{CHECK_FAILED}: {why}"
        if self.state in (State.HEALTHY, State.DEGRADED) and not self.reason.startswith("lists"):
            self.set(State.DEGRADED, self.last_error)

    def lost(self, why: str) -> None:
        self.last_error = why
        self.set(State.UNAVAILABLE, why)

    def refusal(self) -> str | None:
        """None when a call may go to the backend now; else why not (the fast-failure message)."""
        if self.state in (State.HEALTHY, State.DEGRADED):
            if self.breaker_until is None:
                return None
            if time.monotonic() >= self.breaker_until and not self._probing:
                self._probing = True  # half-open: this call is the probe
                return None
        since = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"backend {self.backend!r} is {self.state.value} since {since}: {self.reason}"

    def record(self, ok: bool, seconds: float) -> None:
        """A call finished (ok: it got an answer, even an isError one)."""
        ms = seconds * 1000
        self.latency_ms = ms if self.latency_ms is None else (1 - _EWMA) * self.latency_ms + _EWMA * ms
        if ok:
            self.failures, self.breaker_until, self._probing = 0, None, False
            if self.state in (State.HEALTHY, State.DEGRADED) and not self.reason.startswith("lists"):
                if self.latency_ms > SLOW_MS:
                    self.set(State.DEGRADED, f"slow: {self.latency_ms:.0f} ms average")
                else:
                    self.set(State.HEALTHY, "ok")
            return
        self.failures += 1
        self._probing = False
        if self.failures >= FAILURES_TO_OPEN and self.state in (State.HEALTHY, State.DEGRADED):
            self.breaker_until = time.monotonic() + BREAKER_COOLDOWN_S
            self.set(State.DEGRADED, f"circuit open after {self.failures} failed calls")
        elif self.failures >= 1 and self.state is State.HEALTHY:
            self.set(State.DEGRADED, f"{self.failures} failed call(s)")

    def available(self) -> bool:
        return self.refusal() is None if self.breaker_until is None else False

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.backend,
            "type": self.type,
            "state": self.state.value,
            "reason": self.reason,
            "tools": self.tools,
            "last_error": self.last_error,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "restarts": self.restarts,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.since)),
        }
