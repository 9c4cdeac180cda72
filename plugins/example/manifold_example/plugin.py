"""Backend type `example`: a text toolkit run inside the gateway.

Everything a plugin needs is here: a `Config` model (its `[backends.x]` keys),
a `LocalBackend` subclass whose `@tool` methods become tools, and the hook
that registers the class.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Literal

from pydantic import Field

from gateway import BackendConfig, LocalBackend, ToolError, hookimpl, tool


class ExampleConfig(BackendConfig):
    greeting: str = Field(default="Hello", description="the word `greet` starts with")


class ExampleBackend(LocalBackend):
    type_name = "example"
    Config = ExampleConfig
    config: ExampleConfig

    @tool(read_only=True)
    async def greet(self, name: str) -> str:
        """Greet someone by name."""
        if not name.strip():
            raise ToolError("name must not be empty")
        return f"{self.config.greeting}, {name}!"

    @tool(read_only=True)
    async def digest(self, text: str, algorithm: Literal["sha256", "md5", "sha1"] = "sha256") -> dict[str, str]:
        """Hash a text; returns the hex digest and its algorithm."""
        return {"algorithm": algorithm, "hex": hashlib.new(algorithm, text.encode()).hexdigest()}


@hookimpl
def register_backend_types(register: Callable[[type[ExampleBackend]], None]) -> None:
    register(ExampleBackend)
