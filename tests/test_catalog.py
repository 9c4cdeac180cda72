"""The catalog: namespacing, shortening, transparent mode, collisions, filters, resource URIs and
pagination of the gateway's own lists; through the naming functions and through a real gateway."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import mcp_types as types
import pytest
from conftest import BIN, echo_backend, free_port, stop_group
from mcp import MCPError

from gateway import LocalBackend, hookimpl
from gateway import tool as local_tool
from gateway.backends import ToolFilter
from gateway.catalog import NAME_RE, Catalog, Listing, allowed, exposed_name
from gateway.errors import ConfigError
from gateway.testing import connected, running_gateway


def tool(name: str) -> types.Tool:
    return types.Tool(name=name, input_schema={"type": "object", "properties": {}})


async def all_tools(client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor = None
    pages = 0
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        pages += 1
        if (cursor := page.next_cursor) is None:
            return tools
        assert pages < 100, "the gateway pages forever"


# -- naming -----------------------------------------------------------------------------------


def test_namespacing():
    assert exposed_name("time", "__", "get_current_time") == "time__get_current_time"
    assert exposed_name("time", "-", "now") == "time-now"
    assert exposed_name("", "__", "now") == "now"


def test_exactly_64_characters_is_kept():
    name = "t" * (64 - len("ns__"))
    assert exposed_name("ns", "__", name) == f"ns__{name}"


def test_long_names_are_shortened_deterministically_with_a_hash_suffix():
    long_a = "x" * 70 + "_alpha"
    long_b = "x" * 70 + "_beta"
    a = exposed_name("backend", "__", long_a)
    assert NAME_RE.match(a) and len(a) <= 64
    assert a == exposed_name("backend", "__", long_a)  # deterministic
    digest = hashlib.sha256(f"backend__{long_a}".encode()).hexdigest()[:8]
    assert a.endswith(f"_{digest}") and a.startswith("backend__xxx")
    b = exposed_name("backend", "__", long_b)
    assert a != b and NAME_RE.match(b)  # same 55-char prefix, told apart by the hash


def test_shortening_is_stable_across_processes():
    long = "get_" + "very_" * 20 + "long_name"
    here = exposed_name("srv", "__", long)
    code = f"from gateway.catalog import exposed_name; print(exposed_name('srv', '__', {long!r}))"
    there = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("1", "2")
    }
    assert there == {here}


@pytest.mark.parametrize("name", ["read.file", "with space", "ünïcödé", "a/b:c", "x" * 200, "é" * 70])
def test_names_with_invalid_characters_become_valid(name):
    out = exposed_name("ns", "__", name)
    assert NAME_RE.match(out), out
    assert out == exposed_name("ns", "__", name)


def test_names_differing_only_in_invalid_characters_do_not_collide():
    assert exposed_name("ns", "__", "a.b") != exposed_name("ns", "__", "a b")
    assert exposed_name("ns", "__", "a.b") != exposed_name("ns", "__", "a_b")


def test_filters_are_globs_on_the_backends_own_names():
    assert allowed("echo", ToolFilter())
    assert allowed("echo", ToolFilter(allow=["e*"])) and not allowed("slow", ToolFilter(allow=["e*"]))
    assert not allowed("env", ToolFilter(allow=["e*"], deny=["env"]))  # deny wins over allow
    one_char = ToolFilter(deny=["tool_?"])
    assert not allowed("tool_1", one_char) and allowed("tool_10", one_char)


# -- the catalog built from listings --------------------------------------------------------------


def test_build_namespaces_filters_and_routes():
    cat = Catalog.build(
        {"b": Listing(tools=(tool("echo"), tool("env"))), "a": Listing(tools=(tool("echo"),))},
        {"a": "a", "b": "bee"},
        {"b": ToolFilter(deny=["env"])},
        "__",
    )
    assert [t.name for t in cat.tools] == ["a__echo", "bee__echo"]  # backend-name order
    assert cat.tool_routes["bee__echo"].backend == "b" and cat.tool_routes["bee__echo"].original == "echo"
    assert "bee__env" not in cat.tool_routes and cat.collisions == []


def test_build_transparent_collision_names_both_backends():
    cat = Catalog.build({"a": Listing(tools=(tool("echo"),)), "b": Listing(tools=(tool("echo"),))},
                        {"a": "", "b": ""}, {}, "__")
    assert [t.name for t in cat.tools] == ["echo"]
    assert len(cat.collisions) == 1 and cat.collisions[0].name == "echo"
    assert set(cat.collisions[0].backends) == {"a", "b"}


def test_build_rewrites_colliding_resource_uris_only():
    shared = types.Resource(uri="test://shared", name="shared")
    cat = Catalog.build(
        {"a": Listing(resources=(shared, types.Resource(uri="test://a/own", name="own"))),
         "b": Listing(resources=(shared,))},
        {}, {}, "__",
    )
    uris = sorted(str(r.uri) for r in cat.resources)
    assert uris == ["a+test://shared", "b+test://shared", "test://a/own"]
    assert cat.resource_route("b+test://shared").backend == "b"
    assert cat.resource_route("b+test://shared").original == "test://shared"
    assert cat.resource_route("test://shared") is None


def test_closest_names():
    listing = Listing(tools=(tool("get_current_time"), tool("convert_time")))
    cat = Catalog.build({"time": listing}, {}, {}, "__")
    assert cat.closest("time__get_curent_time")[0] == "time__get_current_time"
    assert cat.closest("zzzz") == []


# -- through a real gateway ------------------------------------------------------------------------


async def test_namespaced_catalog_and_calls_through_the_gateway():
    async with connected({"backends": {"one": echo_backend("one"), "two": echo_backend("two")}}) as client:
        names = {t.name for t in await all_tools(client)}
        assert {"one__echo", "two__echo", "one__slow", "two__env", "gateway__status"} <= names
        assert not {"echo", "slow"} & names
        for backend in ("one", "two"):
            result = await client.call_tool(f"{backend}__echo", {"message": "hi"})
            assert result.structured_content == {"echo": "hi", "server": backend}


async def test_long_namespace_is_shortened_and_still_routes():
    namespace = "n" * 60
    config = {"backends": {"long": echo_backend("long", namespace=namespace)}}
    async with connected(config) as client:
        names = [t.name for t in await all_tools(client)]
        expected = exposed_name(namespace, "__", "echo")
        assert expected != f"{namespace}__echo" and expected in names
        assert all(NAME_RE.match(n) for n in names)
        result = await client.call_tool(expected, {"message": "routed"})
        assert result.structured_content == {"echo": "routed", "server": "long"}


async def test_transparent_mode_exposes_names_unchanged():
    config = {"backends": {"plain": echo_backend("plain", namespace=""), "other": echo_backend("other")}}
    async with connected(config) as client:
        names = {t.name for t in await all_tools(client)}
        assert {"echo", "slow", "other__echo"} <= names and "plain__echo" not in names
        result = await client.call_tool("echo", {"message": "bare"})
        assert result.structured_content == {"echo": "bare", "server": "plain"}


async def test_transparent_collision_is_a_startup_error_naming_both_backends():
    config = {"backends": {"left": echo_backend("left", namespace=""),
                           "right": echo_backend("right", namespace="")}}
    with pytest.raises(ConfigError) as info:
        async with running_gateway(config):
            pytest.fail("a colliding catalog must not serve")
    text = str(info.value)
    assert "'left'" in text and "'right'" in text and "'echo'" in text and "namespace" in text


async def test_denied_tools_are_neither_listed_nor_callable():
    config = {"backends": {"e": echo_backend("e", tools={"allow": ["e*", "slow", "fail"], "deny": ["env"]})}}
    async with connected(config) as client:
        names = {t.name for t in await all_tools(client) if t.name.startswith("e__")}
        assert names == {"e__echo", "e__slow", "e__fail"}
        for hidden in ("e__env", "e__pid", "e__crash"):
            with pytest.raises(MCPError) as info:
                await client.call_tool(hidden, {"name": "PATH"})
            assert "unknown tool" in info.value.error.message
        assert (await client.call_tool("e__echo", {"message": "ok"})).structured_content["echo"] == "ok"


async def test_colliding_resource_uris_are_rewritten_and_routed_back():
    config = {"backends": {"a": echo_backend("a"), "b": echo_backend("b")}}
    async with connected(config, mode="legacy") as client:
        uris = sorted(str(r.uri) for r in (await client.list_resources()).resources)
        assert uris == ["a+test://shared", "b+test://shared", "test://a/own", "test://b/own"]
        for backend in ("a", "b"):
            read = await client.read_resource(f"{backend}+test://shared")
            assert [(str(c.uri), c.text) for c in read.contents] == [(f"{backend}+test://shared",
                                                                       f"{backend}:test://shared")]
        own = await client.read_resource("test://b/own")
        assert own.contents[0].text == "b:test://b/own"
        with pytest.raises(MCPError):
            await client.read_resource("test://shared")  # ambiguous: only the rewritten URIs exist


async def test_prompts_are_namespaced_and_routed():
    async with connected({"backends": {"a": echo_backend("a"), "b": echo_backend("b")}}) as client:
        names = {p.name for p in (await client.list_prompts()).prompts}
        assert names == {"a__hello", "b__hello"}
        result = await client.get_prompt("b__hello", {"who": "Ada"})
        assert result.messages[0].content.text == "Hello Ada from b"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_more_than_one_page_of_tools_is_paginated(mode):
    config = {"backends": {"big": echo_backend("big", **{"args": [*echo_backend("big")["args"],
                                                                  "--extra-tools", "600"]})}}
    async with connected(config, mode=mode, cache=None) as client:
        first = await client.list_tools()
        assert first.next_cursor is not None and 0 < len(first.tools) < 600
        tools = await all_tools(client)
        names = [t.name for t in tools]
        assert len(names) == len(set(names))
        big = {n for n in names if n.startswith("big__")}
        extra = {n for n in big if n.removeprefix("big__tool_").isdigit()}
        assert len(extra) == 600 and len(big) > 600  # the base tools and 600 extra: every page fetched
        assert {"big__tool_0", "big__tool_599", "big__echo"} <= big
        result = await client.call_tool("big__tool_599", {"message": "last"})
        assert result.content[0].text == "last"


def test_manifold_serve_refuses_a_transparent_collision(tmp_path):
    config = tmp_path / "m.toml"
    config.write_text("".join(
        f'[backends.{name}]\ncommand = "{sys.executable}"\nargs = {list(echo_backend(name)["args"])!r}\n'
        'namespace = ""\n\n'.replace("'", '"') for name in ("left", "right")))
    env_file = tmp_path / "empty.env"
    env_file.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANIFOLD_")}
    proc = subprocess.Popen(
        [str(BIN / "manifold"), "serve", "--config", str(config), "--env-file", str(env_file)],
        env={**env, "MANIFOLD_PORT": str(free_port()), "COLUMNS": "300"}, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        stop_group(proc)
    assert proc.returncode == 2, stderr
    assert "'left'" in stderr and "'right'" in stderr and "'echo'" in stderr
    assert "Traceback" not in stderr


class Oddly(LocalBackend):
    """Tools whose own names are not valid exposed names."""

    type_name = "oddly"

    @local_tool(name="read.file")
    async def read_file(self, path: str) -> str:
        return f"read {path}"

    @local_tool(name="with space")
    async def spaced(self) -> str:
        return "spaced"

    @local_tool(name="x" * 80)
    async def long(self) -> str:
        return "long"


class OddlyPlugin:
    @hookimpl
    def register_backend_types(self, register):
        register(Oddly)


async def test_invalid_and_long_tool_names_are_exposed_valid_and_route_back():
    config = {"backends": {"odd": {"type": "oddly"}}}
    async with connected(config, plugins=[("oddly", OddlyPlugin())]) as client:
        names = {t.name for t in await all_tools(client) if t.name.startswith("odd_")}
        expected = {exposed_name("odd", "__", n): n for n in ("read.file", "with space", "x" * 80)}
        assert names == set(expected) and all(NAME_RE.match(n) for n in names)
        assert "odd__read.file" not in names
        read = await client.call_tool(exposed_name("odd", "__", "read.file"), {"path": "/etc/motd"})
        assert read.content[0].text == "read /etc/motd"
        assert (await client.call_tool(exposed_name("odd", "__", "x" * 80), {})).content[0].text == "long"
