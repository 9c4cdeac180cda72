"""The catalog: every backend's listing merged into what clients see, with a route per entry.

A `Catalog` is an immutable snapshot, rebuilt (cheaply, from cached listings)
when a backend's listing changes; requests read whichever snapshot is current,
with no lock.

Naming: tools and prompts are exposed as `<namespace><sep><name>`. A name
outside `^[A-Za-z0-9_-]{1,64}$` (too long, or with other characters) becomes
its valid characters, cut to fit, plus `_` and the first 8 hex digits of the
SHA-256 of the full name: deterministic, so stable across restarts.

Resources keep their URIs where unique. A URI that several backends expose is
rewritten, for every one of them, to `<backend>+<uri>` (`docs+file:///README.md`)
and routed back to the backend's own URI.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema
import mcp_types as types
from jsonschema.protocols import Validator

from gateway.backends import ToolFilter

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INVALID = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Listing:
    """One backend's own tools, resources, templates and prompts, as it last listed them."""

    tools: tuple[types.Tool, ...] = ()
    resources: tuple[types.Resource, ...] = ()
    templates: tuple[types.ResourceTemplate, ...] = ()
    prompts: tuple[types.Prompt, ...] = ()


@dataclass(frozen=True)
class Route:
    """An exposed name mapped to the backend that owns it and the backend's own name."""

    name: str
    backend: str
    original: str


@dataclass(frozen=True)
class Collision:
    name: str
    backends: tuple[str, str]


def exposed_name(namespace: str, separator: str, name: str) -> str:
    """The name clients see for a backend's `name` (see the module docstring)."""
    full = f"{namespace}{separator}{name}" if namespace else name
    if NAME_RE.match(full):
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{_INVALID.sub('_', full)[:55]}_{digest}"


def allowed(name: str, rules: ToolFilter) -> bool:
    if rules.allow and not any(fnmatch.fnmatchcase(name, g) for g in rules.allow):
        return False
    return not any(fnmatch.fnmatchcase(name, g) for g in rules.deny)


@dataclass
class Catalog:
    """A snapshot of everything clients can see. Build with `Catalog.build`."""

    tools: list[types.Tool] = field(default_factory=list)
    tool_routes: dict[str, Route] = field(default_factory=dict)
    prompts: list[types.Prompt] = field(default_factory=list)
    prompt_routes: dict[str, Route] = field(default_factory=dict)
    resources: list[types.Resource] = field(default_factory=list)
    resource_routes: dict[str, Route] = field(default_factory=dict)
    templates: list[types.ResourceTemplate] = field(default_factory=list)
    template_routes: dict[str, Route] = field(default_factory=dict)
    collisions: list[Collision] = field(default_factory=list)
    _by_name: dict[str, types.Tool] = field(default_factory=dict)
    _validators: dict[str, Validator | Literal[False]] = field(default_factory=dict)  # False: broken schema

    @classmethod
    def build(
        cls,
        listings: Mapping[str, Listing],
        namespaces: Mapping[str, str],
        filters: Mapping[str, ToolFilter],
        separator: str,
        own_tools: Iterable[types.Tool] = (),
    ) -> Catalog:
        """Merge listings (in backend-name order, so results are deterministic)."""
        cat = cls()
        for tool in own_tools:
            cat._add_tool(tool, Route(tool.name, "gateway", tool.name))
        for backend in sorted(listings):
            listing, ns = listings[backend], namespaces.get(backend, backend)
            rules = filters.get(backend, ToolFilter())
            for tool in listing.tools:
                if allowed(tool.name, rules):
                    name = exposed_name(ns, separator, tool.name)
                    cat._add_tool(tool.model_copy(update={"name": name}), Route(name, backend, tool.name))
            for prompt in listing.prompts:
                name = exposed_name(ns, separator, prompt.name)
                if name in cat.prompt_routes:
                    cat.collisions.append(Collision(name, (cat.prompt_routes[name].backend, backend)))
                    continue
                cat.prompt_routes[name] = Route(name, backend, prompt.name)
                cat.prompts.append(prompt.model_copy(update={"name": name}))
            for template in listing.templates:
                uri = template.uri_template
                if uri not in cat.template_routes:
                    cat.template_routes[uri] = Route(uri, backend, uri)
                    cat.templates.append(template)
        cat._add_resources(listings)
        return cat

    def _add_tool(self, tool: types.Tool, route: Route) -> None:
        if tool.name in self.tool_routes:
            self.collisions.append(Collision(tool.name, (self.tool_routes[tool.name].backend, route.backend)))
            return
        self.tool_routes[tool.name] = route
        self._by_name[tool.name] = tool
        self.tools.append(tool)

    def _add_resources(self, listings: Mapping[str, Listing]) -> None:
        owners: dict[str, list[str]] = {}
        for backend in sorted(listings):
            for resource in listings[backend].resources:
                owners.setdefault(str(resource.uri), []).append(backend)
        for backend in sorted(listings):
            for resource in listings[backend].resources:
                uri = str(resource.uri)
                exposed = uri if len(owners[uri]) == 1 else f"{backend}+{uri}"
                self.resource_routes[exposed] = Route(exposed, backend, uri)
                self.resources.append(resource if exposed == uri else resource.model_copy(update={"uri": exposed}))

    def tool(self, name: str) -> types.Tool | None:
        return self._by_name.get(name)

    def closest(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, self.tool_routes, n=3, cutoff=0.5)

    def input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self._by_name.get(name)
        return tool.input_schema if tool is not None else None

    def argument_errors(self, name: str, arguments: dict[str, Any]) -> str | None:
        """Why `arguments` do not fit the tool's input schema, or None when they do."""
        validator = self._validator(name, self._by_name[name].input_schema)
        if validator is False:
            return None
        error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(arguments)"
        return f"{where}: {error.message}"

    def _validator(self, key: str, schema: dict[str, Any]) -> Validator | Literal[False]:
        """A compiled validator for `schema`, made once per snapshot; False when the schema itself is broken."""
        validator = self._validators.get(key)
        if validator is None:
            try:
                validator = jsonschema.validators.validator_for(schema)(schema)
            except jsonschema.SchemaError:
                validator = False  # the backend's schema is broken: let the backend (or client) judge
            self._validators[key] = validator
        return validator

    def output_errors(self, name: str, structured: dict[str, Any] | None) -> str | None:
        """Why `structured` does not fit the tool's output schema (None when it does, or there is none)."""
        tool = self._by_name.get(name)
        if tool is None or tool.output_schema is None:
            return None
        if structured is None:
            return "no structured content"
        validator = self._validator(f"{name} output", tool.output_schema)
        if validator is False:
            return None
        error = jsonschema.exceptions.best_match(validator.iter_errors(structured))
        return None if error is None else f"{'/'.join(map(str, error.absolute_path)) or '(result)'}: {error.message}"

    def resource_route(self, uri: str) -> Route | None:
        """The backend that serves `uri`: an exact resource, else the template it matches."""
        route = self.resource_routes.get(uri)
        if route is not None:
            return route
        for template, troute in self.template_routes.items():
            if _template_matches(template, uri):
                return Route(uri, troute.backend, uri)
        return None

    def backend_tools(self, backend: str) -> list[str]:
        return [r.name for r in self.tool_routes.values() if r.backend == backend]


def _template_matches(template: str, uri: str) -> bool:
    pattern = re.escape(template)
    pattern = re.sub(r"\\\{[^}]*\\\}", r"[^/]+", pattern)
    return re.fullmatch(pattern, uri) is not None
