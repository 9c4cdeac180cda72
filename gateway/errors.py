"""Every error the gateway raises on purpose.

    GatewayError
    ├── ConfigError            start-up stops; carries every Problem found, each with file, key, fix
    ├── PluginError            a plugin broke a rule (duplicate name, bad registration)
    ├── BackendError           something went wrong talking to one backend
    │   ├── BackendUnavailable the backend is down (why, since when, what else can serve)
    │   ├── BackendTimeout     a call ran past its deadline (the backend was sent a cancel)
    │   └── BackendProtocolError the backend answered something that is not MCP
    └── RoutingError           the client named something no backend owns
        └── UnknownTool        ... and the closest names that do exist

Foreign exceptions (SDK, OS, pydantic) are mapped to these once, where they
enter: in the backend types and the config loader. `gateway.server` is the one
place these become MCP errors or error results.
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One configuration mistake: where it is, what is wrong, how to fix it."""

    source: str
    key: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.source}: {self.key}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class ConfigError(GatewayError):
    """The configuration cannot be served. Holds every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} configuration problem(s):\n{lines}")


class PluginError(GatewayError):
    """A plugin registered something it may not (a duplicate name, a wrong type)."""


class BackendError(GatewayError):
    """Talking to one backend failed."""

    def __init__(self, backend: str, message: str) -> None:
        self.backend = backend
        super().__init__(message)


class BackendUnavailable(BackendError):
    """The backend cannot take calls now."""


class BackendTimeout(BackendError):
    """A call to the backend ran past its deadline."""


class BackendProtocolError(BackendError):
    """The backend answered with something that is not valid MCP."""


class RoutingError(GatewayError):
    """The client named a tool, prompt or resource that no backend owns."""


class UnknownTool(RoutingError):
    """No route has this name."""

    def __init__(self, name: str, closest: list[str]) -> None:
        self.name = name
        self.closest = closest
        hint = f"; did you mean {', '.join(closest)}?" if closest else ""
        super().__init__(f"unknown tool {name!r}{hint}")
