"""Plugins: a distribution pip-installed at test time is found with no config change and its backend
type serves; a plugin that fails to import, has an unknown or malformed hook, or raises in a hook is
reported by name and disabled while the others load; a duplicate name is an error naming both plugins."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mcp_types as types
import pytest
from conftest import BIN

from gateway import LocalBackend, hookimpl, plugins, tool
from gateway.backends import Backend
from gateway.errors import PluginError
from gateway.testing import connected, running_gateway

# A PEP 517 build backend of a few lines, kept in each source tree (`backend-path`): the
# distributions build offline with pip alone, with no setuptools or wheel to fetch or find installed.
BUILD_BACKEND = r'''
import base64, hashlib, pathlib, tomllib, zipfile


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    pyproject = tomllib.loads(pathlib.Path("pyproject.toml").read_text())
    project = pyproject["project"]
    dist, version = project["name"].replace("-", "_"), project["version"]
    info = f"{dist}-{version}.dist-info"
    files = {m: pathlib.Path(m).read_bytes() for m in pyproject["tool"]["tiny"]["modules"]}
    metadata = f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {version}\n"
    files[f"{info}/METADATA"] = metadata.encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/entry_points.txt"] = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
        for group, eps in project.get("entry-points", {}).items()).encode()
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    wheel = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel
'''

BUILD_SYSTEM = """
[build-system]
requires = []
build-backend = "tiny_backend"
backend-path = ["."]
"""

THROWAWAY_PYPROJECT = BUILD_SYSTEM + """
[project]
name = "manifold-throwaway"
version = "0.3.1"
dependencies = ["mcp-manifold"]

[project.entry-points.manifold]
throwaway = "manifold_throwaway"

[tool.tiny]
modules = ["manifold_throwaway.py"]
"""

THROWAWAY_MODULE = '''
"""A plugin written by a test: backend type `throwaway` with one tool."""

from gateway import BackendConfig, LocalBackend, hookimpl, tool


class ShoutConfig(BackendConfig):
    suffix: str = "!"


class Shout(LocalBackend):
    type_name = "throwaway"
    Config = ShoutConfig

    @tool(read_only=True)
    async def shout(self, text: str) -> str:
        """Say it louder."""
        return text.upper() + self.config.suffix


@hookimpl
def register_backend_types(register):
    register(Shout)
'''

BROKEN_PYPROJECT = BUILD_SYSTEM + """
[project]
name = "manifold-brokenplugin"
version = "9.9.9"

[project.entry-points.manifold]
brokenplugin = "manifold_brokenplugin"

[tool.tiny]
modules = ["manifold_brokenplugin.py"]
"""

BROKEN_MODULE = 'raise RuntimeError("broken on purpose")\n'


DUPE_PYPROJECT = BUILD_SYSTEM + """
[project]
name = "manifold-dupe"
version = "1.0.0"

[project.entry-points.manifold]
dupe = "manifold_dupe"

[tool.tiny]
modules = ["manifold_dupe.py"]
"""

DUPE_MODULE = '''
from gateway import LocalBackend, hookimpl


class Impostor(LocalBackend):
    type_name = "example"  # already registered by manifold-example


@hookimpl
def register_backend_types(register):
    register(Impostor)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding two freshly built and installed plugin distributions (one importable, one not)."""
    return build_site(tmp_path_factory.mktemp("plugin-dists"), (
        ("throwaway", THROWAWAY_PYPROJECT, "manifold_throwaway.py", THROWAWAY_MODULE),
        ("broken", BROKEN_PYPROJECT, "manifold_brokenplugin.py", BROKEN_MODULE),
    ))


@pytest.fixture(scope="module")
def dupe_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plugin distribution registering a backend type an installed plugin has."""
    return build_site(tmp_path_factory.mktemp("dupe-dists"),
                      (("dupe", DUPE_PYPROJECT, "manifold_dupe.py", DUPE_MODULE),))


def build_site(root: Path, dists: tuple[tuple[str, str, str, str], ...]) -> Path:
    sources = []
    for name, pyproject, module, text in dists:
        src = root / name
        src.mkdir()
        (src / "pyproject.toml").write_text(pyproject)
        (src / module).write_text(textwrap.dedent(text))
        (src / "tiny_backend.py").write_text(BUILD_BACKEND)
        sources.append(str(src))
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(target), *sources],
        check=True, capture_output=True, timeout=300,
    )
    assert all((target / module).exists() for _, _, module, _ in dists)
    return target


def manifold(*args: str, site: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANIFOLD_") and k != "PYTHONPATH"}
    env["COLUMNS"] = "300"
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run([str(BIN / "manifold"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def plugin_rows(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row for row in json.loads(proc.stdout)}


# -- a real distribution, installed at test time ------------------------------------------------


def test_installed_distribution_appears_with_no_config_change(site, tmp_path):
    before = plugin_rows(manifold("plugins", "--json", site=None, cwd=tmp_path))
    assert "throwaway" not in before and "brokenplugin" not in before
    rows = plugin_rows(manifold("plugins", "--json", site=site, cwd=tmp_path))
    assert rows["throwaway"] == {"name": "throwaway", "distribution": "manifold-throwaway",
                                 "version": "0.3.1", "hooks": ["register_backend_types"], "error": None}
    for builtin in ("stdio", "http", "example"):  # built-ins are found the same way, and still load
        assert rows[builtin]["error"] is None and rows[builtin]["hooks"] == ["register_backend_types"]
        assert str(rows[builtin]["distribution"]).startswith("manifold-")


def test_plugin_that_fails_to_import_is_reported_and_the_rest_load(site, tmp_path):
    rows = plugin_rows(manifold("plugins", "--json", site=site, cwd=tmp_path))
    broken = rows["brokenplugin"]
    assert broken["distribution"] == "manifold-brokenplugin" and broken["version"] == "9.9.9"
    assert "import failed" in str(broken["error"]) and "broken on purpose" in str(broken["error"])
    assert rows["throwaway"]["error"] is None


def test_plugins_table(site, tmp_path):
    proc = manifold("plugins", site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for fragment in ("throwaway", "manifold-throwaway", "0.3.1", "register_backend_types"):
        assert fragment in proc.stdout
    assert "disabled" in proc.stdout and "broken on purpose" in proc.stdout


def test_installed_backend_type_serves(site, tmp_path):
    config = tmp_path / "m.toml"
    config.write_text('[backends.loud]\ntype = "throwaway"\nsuffix = "!!"\n')
    env_file = tmp_path / "empty.env"
    env_file.touch()
    proc = manifold("call", "loud__shout", "--args", '{"text": "hello"}', "--config", str(config),
                    "--env-file", str(env_file), site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["content"] == [{"type": "text", "text": "HELLO!!"}] and not result.get("isError")
    # and without the distribution, the same config names a type nobody provides
    proc = manifold("check", "--config", str(config), "--env-file", str(env_file), site=None, cwd=tmp_path)
    assert proc.returncode == 2 and "throwaway" in proc.stderr and "pip install" in proc.stderr


# -- in-process plugins that misbehave ------------------------------------------------------------


class Greeter(LocalBackend):
    type_name = "greeter"

    @tool(read_only=True)
    async def greet(self, name: str) -> str:
        """Say hello."""
        return f"Hello, {name}."


class GoodPlugin:
    @hookimpl
    def register_backend_types(self, register):
        register(Greeter)


class RaisingPlugin:
    @hookimpl
    def register_backend_types(self, register):
        register(Echoish)  # registered, then the hook fails: nothing of it may stay
        raise RuntimeError("hook exploded")


class Echoish(LocalBackend):
    type_name = "echoish"

    @tool
    async def echo(self, text: str) -> str:
        return text


class UnknownHookPlugin:
    @hookimpl
    def register_widgets(self, register):
        register("widget")


class MalformedHookPlugin:
    @hookimpl
    def register_backend_types(self, register, unexpected):
        register(Echoish)


class NotABackendPlugin:
    @hookimpl
    def register_backend_types(self, register):
        register(dict)


class RaisingPatternsPlugin:
    @hookimpl
    def register_patterns(self, register):
        raise ValueError("no patterns today")


def info(registry: plugins.Registry, name: str) -> plugins.PluginInfo:
    return next(p for p in registry.plugins if p.name == name)


def test_plugin_raising_in_its_hook_is_contained():
    registry = plugins.load(extra=[("raiser", RaisingPlugin()), ("good", GoodPlugin())])
    raiser = info(registry, "raiser")
    assert raiser.error and "RuntimeError" in raiser.error and "hook exploded" in raiser.error
    assert "echoish" not in registry.backend_types  # what it registered before raising is dropped
    assert registry.backend_types["greeter"] is Greeter and info(registry, "good").error is None
    assert {"stdio", "http", "example"} <= set(registry.backend_types)  # the installed plugins load too


def test_plugin_with_an_unknown_hook_is_contained():
    registry = plugins.load(extra=[("widgets", UnknownHookPlugin()), ("good", GoodPlugin())])
    assert "unknown hook" in (info(registry, "widgets").error or "")
    assert "register_widgets" in (info(registry, "widgets").error or "")
    assert "greeter" in registry.backend_types and "stdio" in registry.backend_types


def test_plugin_with_a_malformed_hook_is_contained():
    registry = plugins.load(extra=[("malformed", MalformedHookPlugin()), ("good", GoodPlugin())])
    assert info(registry, "malformed").error
    assert "echoish" not in registry.backend_types and "greeter" in registry.backend_types


def test_plugin_registering_a_non_backend_is_contained():
    registry = plugins.load(extra=[("odd", NotABackendPlugin()), ("good", GoodPlugin())], entry_points=False)
    assert "not a Backend" in (info(registry, "odd").error or "")
    assert set(registry.backend_types) == {"greeter"}


def test_raising_pattern_hook_is_contained():
    registry = plugins.load(extra=[("patterns-bad", RaisingPatternsPlugin()), ("good", GoodPlugin())],
                            entry_points=False)
    assert "no patterns today" in (info(registry, "patterns-bad").error or "")
    assert "greeter" in registry.backend_types


def test_plugin_info_lists_hooks_and_origin():
    registry = plugins.load(extra=[("good", GoodPlugin())], entry_points=False)
    good = info(registry, "good")
    assert good.hooks == ("register_backend_types",) and good.distribution == "(in-process)"
    assert good.error is None


def test_duplicate_backend_type_names_both_plugins():
    class Stdio2(Backend):
        type_name = "stdio"

    class Dupe:
        @hookimpl
        def register_backend_types(self, register):
            register(Stdio2)

    with pytest.raises(PluginError) as err:
        plugins.load(extra=[("dupe", Dupe())])
    assert "'stdio'" in str(err.value) and "'dupe'" in str(err.value) and "backend type" in str(err.value)


def test_duplicate_between_two_in_process_plugins():
    with pytest.raises(PluginError) as err:
        plugins.load(extra=[("first", GoodPlugin()), ("second", GoodPlugin())], entry_points=False)
    assert "'first'" in str(err.value) and "'second'" in str(err.value) and "'greeter'" in str(err.value)


async def test_gateway_serves_despite_a_raising_plugin():
    config = {"backends": {"hi": {"type": "greeter"}, "ex": {"type": "example"}}}
    plugs = [("raiser", RaisingPlugin()), ("widgets", UnknownHookPlugin()), ("good", GoodPlugin())]
    async with connected(config, plugins=plugs) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"hi__greet", "ex__greet", "ex__digest", "gateway__status"} <= names
        result = await client.call_tool("hi__greet", {"name": "Ada"})
        assert result.content[0].text == "Hello, Ada."


# -- lifespan and middleware hooks --------------------------------------------------------------


async def test_lifespan_and_middleware_hooks_run():
    events: list[str] = []

    class Lifecycle:
        @hookimpl
        def lifespan(self, gateway):
            @contextlib.asynccontextmanager
            async def run():
                events.append(f"enter:{sorted(gateway.backends)}")
                yield
                events.append("exit")

            return run()

        @hookimpl
        def register_middleware(self, register):
            async def tag(call, call_next):
                result = await call_next(call)
                return result.model_copy(update={"meta": {**(result.meta or {}), "test/mw": call.original}})

            register(tag)

    async with connected({"backends": {"hi": {"type": "greeter"}}},
                         plugins=[("good", GoodPlugin()), ("life", Lifecycle())]) as client:
        assert events == ["enter:['hi']"]
        result = await client.call_tool("hi__greet", {"name": "Bo"})
        assert result.meta is not None and result.meta["test/mw"] == "greet"
    assert events == ["enter:['hi']", "exit"]


async def test_raising_lifespan_hook_is_contained():
    class BadLifespan:
        @hookimpl
        def lifespan(self, gateway):
            raise RuntimeError("lifespan exploded")

    class BadEnter:
        @hookimpl
        def lifespan(self, gateway):
            @contextlib.asynccontextmanager
            async def run():
                raise RuntimeError("enter exploded")
                yield

            return run()

    plugs = [("good", GoodPlugin()), ("badlife", BadLifespan()), ("badenter", BadEnter())]
    async with running_gateway({"backends": {"hi": {"type": "greeter"}}}, plugins=plugs) as gateway:
        result = await gateway.router.call("hi__greet", {"name": "Cy"})
        assert isinstance(result.content[0], types.TextContent) and result.content[0].text == "Hello, Cy."


def test_a_plugin_that_raises_in_a_later_hook_is_disabled_whole():
    entered: list[str] = []

    class HalfBroken:
        @hookimpl
        def register_backend_types(self, register):
            register(Echoish)

        @hookimpl
        def register_patterns(self, register):
            raise ValueError("patterns broke")

        @hookimpl
        def register_middleware(self, register):
            register(lambda call, call_next: call_next(call))

        @hookimpl
        def lifespan(self, gateway):
            entered.append("half")

    registry = plugins.load(extra=[("half", HalfBroken()), ("good", GoodPlugin())], entry_points=False)
    assert "patterns broke" in (info(registry, "half").error or "")
    assert set(registry.backend_types) == {"greeter"}  # its backend type went with it
    assert registry.middleware == [] and registry.lifespans == []


async def test_a_middleware_that_raises_costs_one_error_result():
    class Broken:
        @hookimpl
        def register_middleware(self, register):
            async def boom(call, call_next):
                raise RuntimeError("middleware bug")

            register(boom)

    async with connected({"backends": {"hi": {"type": "greeter"}}},
                         plugins=[("good", GoodPlugin()), ("broken", Broken())]) as client:
        result = await client.call_tool("hi__greet", {"name": "Bo"})
        assert result.is_error
        assert "middleware" in result.content[0].text and "RuntimeError: middleware bug" in result.content[0].text
        status = await client.call_tool("gateway__status", {})
        assert not status.is_error  # the session and the gateway serve on


async def test_a_lifespan_can_await_on_its_way_out_while_backends_still_serve():
    calls: list[str] = []

    class Tidy:
        @hookimpl
        def lifespan(self, gateway):
            @contextlib.asynccontextmanager
            async def run():
                yield
                result = await gateway.router.call("hi__greet", {"name": "at exit"})  # backends still up
                calls.append(result.content[0].text)

            return run()

    async with connected({"backends": {"hi": {"type": "greeter"}}},
                         plugins=[("good", GoodPlugin()), ("tidy", Tidy())]) as client:
        assert not (await client.call_tool("hi__greet", {"name": "x"})).is_error
    assert calls == ["Hello, at exit."]


def test_manifold_reports_duplicate_plugins_in_one_line(dupe_site, tmp_path):
    """Two installed distributions registering one backend type: exit 2 with both names, no traceback."""
    proc = manifold("plugins", site=dupe_site, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "'example'" in proc.stderr and "'dupe'" in proc.stderr
    assert "is registered by both plugin" in proc.stderr and "Traceback" not in proc.stderr


async def test_a_lifespan_that_takes_no_gateway_is_entered():
    entered: list[str] = []

    class Bare:
        @hookimpl
        def lifespan(self):
            @contextlib.asynccontextmanager
            async def run():
                entered.append("in")
                yield

            return run()

    async with connected({"backends": {}}, plugins=[("bare", Bare())]):
        assert entered == ["in"]
