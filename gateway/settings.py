"""Settings and the config file: reading, `${VAR}` interpolation, validation, errors.

Sources, strongest first: command-line flags, the process environment, the env
file, the config file's `[gateway]` table, defaults. Backends and routes come
from the config file and from `MANIFOLD_BACKENDS__<NAME>__<KEY>` variables
(environment or env file), the variables winning key by key.

Every problem is collected and raised at once as one `ConfigError`, each naming
the file, the key and the fix. Values never appear in a problem: they may be secrets.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dotenv
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.backends import Backend, BackendConfig
from gateway.errors import ConfigError, Problem

RESERVED_BACKEND = "gateway"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Settings(BaseSettings):
    """The gateway's own settings (design.md's table). Backends are validated separately."""

    model_config = SettingsConfigDict(
        env_prefix="MANIFOLD_", env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    path: str = "/mcp"
    config: Path = Path("config/manifold.toml")
    auth_token: SecretStr | None = Field(default=None, description="bearer token(s), comma-separated")
    allow_insecure: bool = False
    separator: str = Field(default="__", min_length=1)
    call_timeout_s: float = Field(default=60.0, gt=0)
    health_interval_s: float = Field(default=10.0, gt=0)
    restart_backoff_s: float = Field(default=0.5, gt=0, description="first restart delay; doubles up to 30 s")
    stateless: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    hide_unavailable: bool = False
    max_concurrent_calls: int = Field(default=512, gt=0, description="calls in flight at once, all clients")
    backends: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)
    routes: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)

    def tokens(self) -> list[str]:
        if self.auth_token is None:
            return []
        return [t.strip() for t in self.auth_token.get_secret_value().split(",") if t.strip()]


@dataclass(frozen=True)
class Config:
    """A validated configuration: settings, each backend's own config, the raw route tables."""

    settings: Settings
    backends: dict[str, BackendConfig]
    routes: dict[str, dict[str, Any]]
    source: str
    backend_types: dict[str, str] = field(default_factory=dict)


def load(
    flags: Mapping[str, Any] | None = None,
    *,
    env_file: Path | None = None,
    backend_types: Mapping[str, type[Backend]],
) -> Config:
    """Read and validate everything. Raises `ConfigError` with every problem found."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env_path = env_file or Path(".env")
    problems: list[Problem] = []
    file_env: dict[str, str] = {}
    if env_path.is_file() or (env_file is not None and env_path.exists() and not env_path.is_dir()):
        file_env = {k: v for k, v in dotenv.dotenv_values(env_path).items() if v is not None}  # /dev/null too
    elif env_file is not None:
        problems.append(Problem(str(env_file), "--env-file", "file not found", "pass an existing env file"))
    variables = {**file_env, **os.environ}

    config_path = Path(
        flags.get("config") or variables.get("MANIFOLD_CONFIG") or Settings.model_fields["config"].default
    )
    table = _read_config_file(config_path, explicit="config" in flags or "MANIFOLD_CONFIG" in variables,
                              problems=problems)
    return from_tables(table, flags, source=str(config_path), env_path=env_path, variables=variables,
                       backend_types=backend_types, problems=problems)


def from_tables(
    table: dict[str, Any],
    flags: Mapping[str, Any] | None = None,
    *,
    source: str,
    backend_types: Mapping[str, type[Backend]],
    env_path: Path | None = None,
    variables: Mapping[str, str] | None = None,
    problems: list[Problem] | None = None,
) -> Config:
    """Validate config tables already read (from a file, or built in a test)."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    variables = dict(os.environ) if variables is None else variables
    env_path = env_path or Path(".env")
    problems = [] if problems is None else problems
    table = _interpolate(table, variables, source, "", problems)
    gateway_table = table.get("gateway", {})
    if not isinstance(gateway_table, dict):
        problems.append(Problem(source, "gateway", "must be a table", "write [gateway] with key = value lines"))
        gateway_table = {}
    unknown_top = sorted(set(table) - {"gateway", "backends", "routes"})
    for key in unknown_top:
        problems.append(Problem(source, key, "unknown top-level table",
                                "use [gateway], [backends.<name>] or [routes.<name>]"))

    settings = _settings(flags, gateway_table, env_path, source, problems)
    file_backends = table.get("backends", {})
    env_backends = settings.backends if settings else {}
    backends = _backends(file_backends, env_backends, backend_types, source, problems)
    routes = table.get("routes", {})
    if not isinstance(routes, dict) or not all(isinstance(r, dict) for r in routes.values()):
        problems.append(Problem(source, "routes", "must be tables", "write [routes.<name>] tables"))
        routes = {}
    env_routes = {name: {k: _json_leaf(v) for k, v in table.items()} for name, table in
                  (settings.routes if settings else {}).items()}  # MANIFOLD_ROUTES__<NAME>__STEPS='[...]'
    routes = {**routes, **env_routes}
    for name in routes:
        if name in backends or name.startswith(f"{RESERVED_BACKEND}_"):
            problems.append(Problem(source, f"routes.{name}", "name collides with a backend or the gateway",
                                    "rename the route"))
    if problems or settings is None:
        raise ConfigError(problems)
    types_of = {name: cfg.type or "" for name, cfg in backends.items()}
    return Config(settings, backends, routes, source, types_of)


def _read_config_file(path: Path, *, explicit: bool, problems: list[Problem]) -> dict[str, Any]:
    if not path.is_file():
        if explicit:
            problems.append(Problem(str(path), "config", "file not found",
                                    "pass --config with an existing file, or unset MANIFOLD_CONFIG"))
        return {}
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        duplicates: list[str] = []

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [k for k, _ in pairs]
            duplicates.extend(sorted({k for k in keys if keys.count(k) > 1}))
            return dict(pairs)

        try:
            data = json.loads(text, object_pairs_hook=no_duplicates)
        except json.JSONDecodeError as exc:
            problems.append(Problem(str(path), f"line {exc.lineno}", f"invalid JSON: {exc.msg}", "fix the syntax"))
            return {}
        for key in duplicates:
            problems.append(Problem(str(path), f"mcpServers.{key}", "duplicate key: the later one would hide "
                                    "the earlier", "give each server its own name"))
        if not isinstance(data, dict):
            problems.append(Problem(str(path), "(top)", "must be an object", 'write {"mcpServers": {...}}'))
            return {}
        return _from_mcp_servers(data)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(str(path), "(syntax)", f"invalid TOML: {exc}", "fix the syntax"))
        return {}


def _from_mcp_servers(data: dict[str, Any]) -> dict[str, Any]:
    """The `mcpServers` JSON shape of Claude Desktop, Cursor and Claude Code, as our tables."""
    servers = data.get("mcpServers", {})
    out: dict[str, Any] = {k: v for k, v in data.items() if k != "mcpServers"}
    backends: dict[str, Any] = {}
    for name, server in servers.items() if isinstance(servers, dict) else []:
        entry = dict(server) if isinstance(server, dict) else server
        if isinstance(entry, dict):
            kind = entry.pop("type", None)
            if kind == "sse":
                entry["type"], entry["transport"] = "http", "sse"
            elif kind in ("http", "streamable-http", "streamableHttp"):
                entry["type"] = "http"
            elif kind is not None and kind != "stdio":
                entry["type"] = kind
            entry.pop("disabled", None) and entry.update(enabled=False)
        backends[name] = entry
    out["backends"] = {**out.get("backends", {}), **backends}
    return out


def _interpolate(value: Any, variables: Mapping[str, str], source: str, key: str, problems: list[Problem]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, variables, source, f"{key}.{k}" if key else k, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, variables, source, f"{key}[{i}]", problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def resolve(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in variables:
            return variables[name]
        if default is not None:
            return default
        problems.append(Problem(source, key, f"variable ${{{name}}} is not set",
                                f"set {name} in the environment or the env file, or write ${{{name}:-default}}"))
        return ""

    return _VAR_RE.sub(resolve, value)


def _settings(
    flags: Mapping[str, Any], table: dict[str, Any], env_path: Path, source: str, problems: list[Problem],
) -> Settings | None:
    known = sorted(set(Settings.model_fields) - {"backends", "routes"})
    for key in sorted(set(table) - set(Settings.model_fields) - {"backends", "routes"}):
        problems.append(Problem(source, f"gateway.{key}", "unknown setting", f"use one of {', '.join(known)}"))
    table = {k: v for k, v in table.items() if k in Settings.model_fields}

    class _Layered(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, dotenv_settings, InitSettingsSource(settings_cls, table)

    try:
        return _Layered(_env_file=env_path if env_path.is_file() else None, **flags)  # type: ignore[call-arg]
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            name = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(Problem(source, f"gateway.{name} (or MANIFOLD_{name.upper()})", err["msg"],
                                    _fix_for(Settings.model_fields.get(name))))
        return None


def _fix_for(info: Any) -> str:
    if info is None:
        return "remove the key"
    return f"expected {getattr(info.annotation, '__name__', info.annotation)}, default {info.default!r}"


def _backends(
    file_tables: Any, env_tables: dict[str, dict[str, Any]], backend_types: Mapping[str, type[Backend]],
    source: str, problems: list[Problem],
) -> dict[str, BackendConfig]:
    if not isinstance(file_tables, dict):
        problems.append(Problem(source, "backends", "must be tables", "write [backends.<name>] tables"))
        file_tables = {}
    merged: dict[str, Any] = {}
    lowered = {k.lower(): k for k in file_tables}
    for name, table in file_tables.items():
        merged[name] = table
    for env_name, table in env_tables.items():
        name = lowered.get(env_name.lower(), env_name)
        base = merged.get(name, {})
        merged[name] = {**base, **{k: _json_leaf(v) for k, v in table.items()}} if isinstance(base, dict) else base
    out: dict[str, BackendConfig] = {}
    for name, table in merged.items():
        key = f"backends.{name}"
        if name == RESERVED_BACKEND:
            problems.append(Problem(source, key, "the name 'gateway' is reserved for the gateway's own tools",
                                    "rename the backend"))
            continue
        if not NAME_RE.match(name):
            problems.append(Problem(source, key, "backend names are 1-48 of A-Z a-z 0-9 _ -",
                                    "rename the backend"))
            continue
        if not isinstance(table, dict):
            problems.append(Problem(source, key, "must be a table", f"write [backends.{name}] with key = value"))
            continue
        kind = table.get("type") or ("stdio" if "command" in table else "http" if "url" in table else None)
        if kind is None:
            problems.append(Problem(source, f"{key}.type", "no type, command or url",
                                    'add command = "..." (stdio), url = "..." (http) or type = "..."'))
            continue
        cls = backend_types.get(kind)
        if cls is None:
            known = ", ".join(sorted(backend_types)) or "none installed"
            problems.append(Problem(source, f"{key}.type", f"unknown backend type {kind!r}",
                                    f"use one of: {known}; or pip install the plugin that provides it"))
            continue
        try:
            out[name] = cls.Config.model_validate({**table, "type": kind})
        except ValidationError as exc:
            for err in exc.errors(include_input=False, include_url=False):
                where = ".".join(str(p) for p in err["loc"])
                problems.append(Problem(source, f"{key}.{where}", err["msg"], _field_fix(cls.Config, err)))
    return out


def _json_leaf(value: Any) -> Any:
    """`MANIFOLD_BACKENDS__X__ARGS='["a"]'`: a JSON list or object in a variable is that value."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _field_fix(model: type[BaseModel], err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return f"remove it; known keys: {', '.join(sorted(model.model_fields))}"
    if err["type"] == "missing":
        return "add the key"
    top = model.model_fields.get(str(err["loc"][0])) if err["loc"] else None
    return f"{top.description}" if top is not None and top.description else "fix the value's type"
