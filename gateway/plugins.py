"""Finds plugins through the `manifold` entry points and collects what they register.

Built-in backend types and patterns are plugins too, found the same way. Every
plugin is contained: one that fails to import, has a malformed hook or raises
in a hook is reported by name and disabled; the others load.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import pluggy

from gateway import hookspecs
from gateway.backends import Backend, BackendConfig
from gateway.errors import PluginError
from gateway.middleware import Middleware
from gateway.patterns.base import Pattern

if TYPE_CHECKING:  # annotation only, as in hookspecs: the gateway is handed to lifespans, never imported
    from gateway.app import Gateway

log = logging.getLogger("manifold.plugins")

ENTRY_POINT_GROUP = "manifold"


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as `manifold plugins` shows it."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    error: str | None = None


class Lifespan(Protocol):
    """A plugin's ``lifespan`` hookimpl (see `hookspecs.lifespan`), called as ``hook(gateway=...)``."""

    def __call__(self, gateway: Gateway) -> AbstractAsyncContextManager[None] | None: ...


@dataclass
class Registry:
    """Everything the loaded plugins registered, by kind, with who registered it."""

    backend_types: dict[str, type[Backend]] = field(default_factory=dict)
    backends: list[Backend] = field(default_factory=list)
    patterns: dict[str, Pattern] = field(default_factory=dict)
    middleware: list[Middleware] = field(default_factory=list)
    lifespans: list[Lifespan] = field(default_factory=list)
    plugins: list[PluginInfo] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)


def load(extra: Sequence[tuple[str, object]] = (), *, entry_points: bool = True) -> Registry:
    """Load every plugin and run its registering hooks.

    :param extra: ``(name, plugin)`` pairs registered besides the entry points
        (an in-process plugin under test).
    :param entry_points: False to load only ``extra``.
    :raises PluginError: two plugins registered the same name.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    failed: dict[str, str] = {}
    distributions: dict[str, tuple[str, str]] = {}
    if entry_points:
        _preload(pm, failed, distributions)
        _load_entry_points(pm, failed)
    for name, plugin in extra:
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            failed[name] = str(exc)
    _drop_unknown_hooks(pm, failed)

    registry = Registry()
    for name, why in failed.items():
        log.warning("plugin %s disabled: %s", name, why)
    _collect(pm, registry, failed)
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist, version = distributions.get(name, ("(in-process)", ""))
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or []))
        registry.plugins.append(PluginInfo(name, dist, version, hooks, failed.get(name)))
    for name, why in failed.items():
        if pm.get_plugin(name) is None:
            dist, version = distributions.get(name, ("?", "?"))
            registry.plugins.append(PluginInfo(name, dist, version, (), why))
    registry.plugins.sort(key=lambda p: p.name)
    return registry


def _preload(pm: pluggy.PluginManager, failed: dict[str, str], dists: dict[str, tuple[str, str]]) -> None:
    """Import every entry point on its own, so one broken plugin cannot stop the rest."""
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            dists[ep.name] = (dist.metadata["name"], dist.version)
            try:
                ep.load()
            except Exception as exc:
                failed[ep.name] = f"import failed: {type(exc).__name__}: {exc}"
                pm.set_blocked(ep.name)


def _load_entry_points(pm: pluggy.PluginManager, failed: dict[str, str]) -> None:
    while True:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or str(exc.plugin)
            failed[name] = f"invalid hook: {exc}"
            pm.set_blocked(name)


def _drop_unknown_hooks(pm: pluggy.PluginManager, failed: dict[str, str]) -> None:
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or str(exc.plugin)
            failed[name] = f"unknown hook: {exc}"
            pm.unregister(exc.plugin)
            pm.set_blocked(name)


def _collect(pm: pluggy.PluginManager, registry: Registry, failed: dict[str, str]) -> None:
    """Call each plugin's registering hooks separately, so a raising plugin loses only itself."""

    def owner_check(kind: str, key: str, plugin: str) -> None:
        qualified = f"{kind}:{key}"
        if qualified in registry.owners and registry.owners[qualified] != plugin:
            raise PluginError(
                f"{kind} {key!r} is registered by both plugin {registry.owners[qualified]!r} and plugin "
                f"{plugin!r}; uninstall one of them"
            )
        registry.owners[qualified] = plugin

    for impl in pm.hook.register_backend_types.get_hookimpls():
        found: list[type[Backend]] = []
        if _safecall(impl, failed, register=found.append):
            for cls in found:
                if not (isinstance(cls, type) and issubclass(cls, Backend) and getattr(cls, "type_name", None)):
                    failed[impl.plugin_name] = f"registered {cls!r}, which is not a Backend with a type_name"
                    continue
                if not issubclass(cls.Config, BackendConfig):
                    failed[impl.plugin_name] = f"{cls.__name__}.Config does not extend BackendConfig"
                    continue
                owner_check("backend type", cls.type_name, impl.plugin_name)
                registry.backend_types[cls.type_name] = cls

    for impl in pm.hook.register_patterns.get_hookimpls():
        patterns: list[Pattern] = []
        if _safecall(impl, failed, register=patterns.append):
            for pattern in patterns:
                owner_check("pattern", pattern.name, impl.plugin_name)
                registry.patterns[pattern.name] = pattern

    chain: list[tuple[str, Middleware]] = []
    for impl in reversed(pm.hook.register_middleware.get_hookimpls()):  # pluggy lists last-registered first
        middleware: list[Middleware] = []
        if _safecall(impl, failed, register=middleware.append):
            chain += [(impl.plugin_name, m) for m in middleware]

    for impl in pm.hook.register_backends.get_hookimpls():
        backends: list[Backend] = []
        if _safecall(impl, failed, register=backends.append):
            for backend in backends:
                owner_check("backend", backend.name, impl.plugin_name)
                registry.backends.append(backend)

    # A plugin that failed in any hook is disabled whole: what its earlier hooks registered goes too.
    for qualified, plugin in list(registry.owners.items()):
        if plugin in failed:
            kind, key = qualified.split(":", 1)
            if kind == "backend type":
                registry.backend_types.pop(key, None)
            elif kind == "pattern":
                registry.patterns.pop(key, None)
            elif kind == "backend":
                registry.backends = [b for b in registry.backends if b.name != key]
            del registry.owners[qualified]
    registry.middleware.extend(m for plugin, m in chain if plugin not in failed)
    for impl in pm.hook.lifespan.get_hookimpls():
        if impl.plugin_name in failed:
            continue
        # pluggy types a hookimpl as Callable[..., object]; it validated this one against the lifespan spec
        registry.lifespans.append(cast(Lifespan, impl.function))


def _safecall(impl: pluggy.HookImpl, failed: dict[str, str], **kwargs: Any) -> bool:
    if impl.plugin_name in failed:
        return False
    try:
        impl.function(**kwargs)
        return True
    except Exception as exc:
        failed[impl.plugin_name] = f"hook {impl.function.__name__} raised {type(exc).__name__}: {exc}"
        log.warning("plugin %s disabled: %s", impl.plugin_name, failed[impl.plugin_name])
        return False
