"""Prometheus metrics, one registry per gateway (nothing global), served at /metrics."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.health import Health, State

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._calls = Counter("manifold_tool_calls", "Tool calls by backend, tool and outcome",
                              ["backend", "tool", "outcome"], registry=self.registry)
        self._latency = Histogram("manifold_tool_call_seconds", "Tool call latency through the gateway",
                                  ["backend", "tool"], buckets=_BUCKETS, registry=self.registry)
        self._state = Gauge("manifold_backend_state", "1 for the state each backend is in",
                            ["backend", "state"], registry=self.registry)
        self._restarts = Gauge("manifold_backend_restarts", "Reconnects per backend", ["backend"],
                               registry=self.registry)
        self._tools = Gauge("manifold_backend_tools", "Tools each backend lists", ["backend"],
                            registry=self.registry)

    def call(self, backend: str, tool: str, outcome: str, seconds: float) -> None:
        self._calls.labels(backend, tool, outcome).inc()
        if outcome in ("ok", "error"):
            self._latency.labels(backend, tool).observe(seconds)

    def render(self, health: Iterable[Health]) -> bytes:
        for h in health:
            for state in State:
                self._state.labels(h.backend, state.value).set(1 if h.state is state else 0)
            self._restarts.labels(h.backend).set(h.restarts)
            self._tools.labels(h.backend).set(h.tools)
        return generate_latest(self.registry)
