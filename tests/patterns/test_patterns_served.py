"""Every pattern through a running `manifold serve`, with real backends.

Backends: `mcp-server-time` and `mcp-server-git` (PyPI, the git one on a
throwaway repository), `@modelcontextprotocol/server-memory` (npm; its
knowledge graph shows whether a step or a compensation really ran), and our
echo server with its slow and failing tools. One gateway serves the module;
tests that need a backend down start their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from conftest import BIN, echo_backend, npm_server, toml_table, wait_until
from mcp import Client

from gateway.testing import ServedGateway, served


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("repo")
    git = ["git", "-C", str(path), "-c", "user.name=Test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "README").write_text("hello\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first commit"], check=True)
    return path


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, repo: Path) -> Iterator[ServedGateway]:
    folder = tmp_path_factory.mktemp("patterns")
    config = (
        toml_table("time", {"command": str(BIN / "mcp-server-time")})
        + toml_table("git", {"command": str(BIN / "mcp-server-git"), "args": ["--repository", str(repo)],
                             "tools": {"allow": ["git_status", "git_log"]}})
        + toml_table("memory", {"command": npm_server("server-memory")[0], "args": npm_server("server-memory")[1:],
                                "env": {"MEMORY_FILE_PATH": str(folder / "memory.jsonl")}})
        + toml_table("echo", echo_backend("echo"))
        + toml_table("mirror", echo_backend("mirror"))
        + '[routes.stamp]\npattern = "sequential"\ndescription = "Echo the time in a zone"\n'
          'steps = [ { id = "now", tool = "time__get_current_time", arguments = { timezone = "{{ input.zone }}" } },'
          ' { tool = "echo__echo", arguments = { message = "it is {{ now.structured.datetime }}" } } ]\n'
    )
    with served(config, folder) as gateway:
        yield gateway


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def coordinate(gw: ServedGateway, plan: dict[str, Any], **options: Any) -> dict[str, Any]:
    async with Client(gw.url, **options) as client:
        result = await client.call_tool("gateway__coordinate", plan)
    assert result.structured_content is not None, text(result)
    out = dict(result.structured_content)
    assert result.is_error == (out["status"] == "failed"), text(result)
    return out


def statuses(out: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in out["steps"]}


async def graph(gw: ServedGateway) -> set[str]:
    """Names of the entities in server-memory's knowledge graph."""
    async with Client(gw.url) as client:
        result = await client.call_tool("memory__read_graph", {})
    assert not result.is_error, text(result)
    data = result.structured_content or {}
    if "entities" not in data:  # older server-memory versions answer in text only
        import json
        data = json.loads(text(result))
    return {e["name"] for e in data["entities"]}


def entity(name: str) -> dict[str, Any]:
    return {"entities": [{"name": name, "entityType": "test", "observations": ["made by a plan"]}]}


# -- listing


async def test_coordinate_and_routes_are_listed_with_their_schemas(gw: ServedGateway) -> None:
    async with Client(gw.url) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    plan = tools["gateway__coordinate"]
    assert plan.input_schema["required"] == ["steps"]
    assert set(plan.input_schema["properties"]["pattern"]["enum"]) >= {
        "sequential", "parallel", "fallback", "coordinated", "broadcast", "auto"}
    assert plan.output_schema is not None and "steps" in plan.output_schema["properties"]
    stamp = tools["stamp"]
    assert stamp.description == "Echo the time in a zone"
    assert stamp.input_schema["required"] == ["zone"]


# -- sequential


async def test_sequential_passes_a_structured_value_from_one_backend_to_another(gw: ServedGateway) -> None:
    out = await coordinate(gw, {"pattern": "sequential", "steps": [
        {"id": "now", "tool": "time__get_current_time", "arguments": {"timezone": "Europe/Paris"}},
        {"id": "say", "tool": "echo__echo", "arguments": {"message": "{{ now.structured.timezone }}"}},
    ]})
    assert out["status"] == "ok", out
    assert statuses(out) == {"now": "ok", "say": "ok"}
    assert out["steps"][1]["structured"]["echo"] == "Europe/Paris"
    assert out["steps"][0]["backend"] == "time" and out["steps"][1]["backend"] == "echo"


async def test_a_route_runs_its_steps_with_the_callers_inputs(gw: ServedGateway) -> None:
    async with Client(gw.url) as client:
        result = await client.call_tool("stamp", {"zone": "Asia/Tokyo"})
    assert not result.is_error, text(result)
    out = result.structured_content or {}
    assert out["status"] == "ok"
    assert out["steps"][1]["structured"]["echo"].startswith("it is ")
    assert "+09:00" in out["steps"][1]["structured"]["echo"]


async def test_sequential_stops_at_the_first_failure_and_calls_nothing_after(gw: ServedGateway) -> None:
    name = f"never-{uuid.uuid4().hex[:8]}"
    out = await coordinate(gw, {"pattern": "sequential", "steps": [
        {"id": "a", "tool": "echo__echo", "arguments": {"message": "first"}},
        {"id": "b", "tool": "echo__fail"},
        {"id": "c", "tool": "memory__create_entities", "arguments": entity(name)},
    ]})
    assert out["status"] == "failed"
    assert statuses(out) == {"a": "ok", "b": "error", "c": "skipped"}
    assert "always fails" in out["steps"][1]["error"]
    assert out["steps"][2]["attempts"] == 0
    assert name not in await graph(gw)


async def test_sequential_with_continue_runs_the_rest_and_is_partial(gw: ServedGateway) -> None:
    out = await coordinate(gw, {"pattern": "sequential", "on_error": "continue", "steps": [
        {"id": "a", "tool": "echo__fail"},
        {"id": "b", "tool": "echo__echo", "arguments": {"message": "{{ a.text }}"}},
        {"id": "c", "tool": "time__get_current_time", "arguments": {"timezone": "UTC"}},
    ]})
    assert out["status"] == "partial"
    assert statuses(out) == {"a": "error", "b": "skipped", "c": "ok"}
    assert "'a' (error)" in out["steps"][1]["error"]


async def test_a_reference_to_a_missing_key_is_a_step_error_naming_the_path(gw: ServedGateway) -> None:
    out = await coordinate(gw, {"pattern": "sequential", "steps": [
        {"id": "now", "tool": "time__get_current_time", "arguments": {"timezone": "UTC"}},
        {"id": "say", "tool": "echo__echo", "arguments": {"message": "{{ now.structured.nope.deeper }}"}},
    ]})
    assert out["status"] == "failed"
    assert statuses(out) == {"now": "ok", "say": "error"}
    assert "now.structured has no 'nope'" in out["steps"][1]["error"]


async def test_only_a_read_only_tool_is_retried_and_attempts_say_so(gw: ServedGateway) -> None:
    key = uuid.uuid4().hex
    out = await coordinate(gw, {"pattern": "sequential", "on_error": "continue", "steps": [
        {"id": "read", "tool": "echo__flaky_read", "arguments": {"key": key}},
        {"id": "write", "tool": "echo__fail"},
    ]})
    assert statuses(out) == {"read": "ok", "write": "error"}
    assert [s["attempts"] for s in out["steps"]] == [2, 1]  # readOnlyHint: one retry; unannotated: none
    assert out["steps"][0]["content"][0]["text"] == f"read {key}"


# -- parallel


async def test_parallel_steps_overlap_so_ten_take_about_as_long_as_one(gw: ServedGateway) -> None:
    one = await coordinate(gw, {"pattern": "parallel", "steps": [
        {"tool": "echo__slow", "arguments": {"seconds": 0.5}}]})
    ten = await coordinate(gw, {"pattern": "parallel", "max_concurrency": 10, "steps": [
        {"tool": "echo__slow", "arguments": {"seconds": 0.5}} for _ in range(10)]})
    assert one["status"] == ten["status"] == "ok"
    slowest = max(s["duration_ms"] for s in ten["steps"])
    # Run one after another, ten steps would take ten times one step; overlapped, about one.
    assert slowest < 5 * one["steps"][0]["duration_ms"], (slowest, one["steps"][0]["duration_ms"])


async def test_parallel_gathers_three_backends_at_one_sync_point(gw: ServedGateway, repo: Path) -> None:
    out = await coordinate(gw, {"pattern": "parallel", "steps": [
        {"id": "log", "tool": "git__git_log", "arguments": {"repo_path": str(repo)}},
        {"id": "status", "tool": "git__git_status", "arguments": {"repo_path": str(repo)}},
        {"id": "now", "tool": "time__get_current_time", "arguments": {"timezone": "UTC"}},
        {"id": "say", "tool": "echo__echo", "arguments": {"message": "done"}},
    ]})
    assert out["status"] == "ok", out
    by_id = {s["id"]: s for s in out["steps"]}
    assert [s["id"] for s in out["steps"]] == ["log", "status", "now", "say"]  # plan order, whatever finished first
    assert "first commit" in by_id["log"]["content"][0]["text"]
    assert by_id["now"]["structured"]["timezone"] == "UTC"
    assert {s["backend"] for s in out["steps"]} == {"git", "time", "echo"}


async def test_parallel_respects_max_concurrency(gw: ServedGateway, tmp_path: Path) -> None:
    markers = [tmp_path / f"started-{i}" for i in range(4)]
    out = await coordinate(gw, {"pattern": "parallel", "max_concurrency": 2, "steps": [
        {"tool": "echo__slow", "arguments": {"seconds": 0.4, "started": str(m)}} for m in markers]})
    assert out["status"] == "ok"
    starts = sorted(m.stat().st_mtime for m in markers)
    # With two at a time, the third step can only start once one of the first two (0.4 s) is done.
    assert starts[2] - starts[0] >= 0.3, starts


async def test_parallel_is_partial_when_some_fail_and_failed_when_all_do(gw: ServedGateway) -> None:
    mixed = await coordinate(gw, {"pattern": "parallel", "steps": [
        {"id": "good", "tool": "echo__echo", "arguments": {"message": "x"}}, {"id": "bad", "tool": "echo__fail"}]})
    assert mixed["status"] == "partial" and statuses(mixed) == {"good": "ok", "bad": "error"}
    worst = await coordinate(gw, {"pattern": "parallel", "steps": [{"tool": "echo__fail"}, {"tool": "mirror__fail"}]})
    assert worst["status"] == "failed"


# -- fallback


async def test_fallback_stops_at_the_first_success_and_never_calls_the_rest(gw: ServedGateway) -> None:
    name = f"spare-{uuid.uuid4().hex[:8]}"
    out = await coordinate(gw, {"pattern": "fallback", "steps": [
        {"id": "main", "tool": "time__get_current_time", "arguments": {"timezone": "UTC"}},
        {"id": "spare", "tool": "memory__create_entities", "arguments": entity(name)},
    ]})
    assert out["status"] == "ok"
    assert statuses(out) == {"main": "ok", "spare": "skipped"}
    assert out["steps"][1]["attempts"] == 0
    assert name not in await graph(gw)


async def test_fallback_to_a_later_alternative_is_degraded_and_says_why(gw: ServedGateway) -> None:
    out = await coordinate(gw, {"pattern": "fallback", "steps": [
        {"id": "first", "tool": "echo__fail"},
        {"id": "second", "tool": "mirror__echo", "arguments": {"message": "served"}},
    ]})
    assert out["status"] == "degraded"
    assert statuses(out) == {"first": "error", "second": "ok"}
    assert any("served by alternative 'second'" in n for n in out["notices"])


async def test_fallback_fails_when_no_alternative_succeeds(gw: ServedGateway) -> None:
    out = await coordinate(gw, {"pattern": "fallback", "steps": [{"tool": "echo__fail"}, {"tool": "mirror__fail"}]})
    assert out["status"] == "failed"
    assert "no alternative succeeded" in out["notices"]


# -- coordinated


async def test_coordinated_runs_independent_branches_at_once(gw: ServedGateway, tmp_path: Path) -> None:
    left, right = tmp_path / "left", tmp_path / "right"
    out = await coordinate(gw, {"pattern": "coordinated", "steps": [
        {"id": "root", "tool": "echo__echo", "arguments": {"message": "go"}},
        {"id": "left", "tool": "echo__slow", "arguments": {"seconds": 1, "started": str(left)}, "depends_on": ["root"]},
        {"id": "right", "tool": "mirror__slow", "arguments": {"seconds": 1, "started": str(right)},
         "depends_on": ["root"]},
        {"id": "join", "tool": "echo__echo", "arguments": {"message": "{{ root.text }} {{ left.text }}"},
         "depends_on": ["left", "right"]},
    ]})
    assert out["status"] == "ok", out
    assert out["steps"][3]["structured"]["echo"] == "go slept 1"
    # Both branches were started before either could have finished (each sleeps 1 s).
    assert abs(left.stat().st_mtime - right.stat().st_mtime) < 0.9


async def test_coordinated_failure_compensates_what_succeeded_in_reverse(gw: ServedGateway) -> None:
    first, second = f"first-{uuid.uuid4().hex[:8]}", f"second-{uuid.uuid4().hex[:8]}"
    undo = {"tool": "memory__delete_entities"}
    out = await coordinate(gw, {"pattern": "coordinated", "steps": [
        {"id": "a", "tool": "memory__create_entities", "arguments": entity(first),
         "compensate": {**undo, "arguments": {"entityNames": [first]}}},
        {"id": "b", "tool": "memory__create_entities", "arguments": entity(second), "depends_on": ["a"],
         "compensate": {**undo, "arguments": {"entityNames": [second]}}},
        {"id": "c", "tool": "echo__fail", "depends_on": ["b"]},
        {"id": "d", "tool": "echo__echo", "arguments": {"message": "never"}, "depends_on": ["c"]},
    ]})
    assert out["status"] == "failed"
    assert statuses(out) == {"a": "compensated", "b": "compensated", "c": "error", "d": "skipped"}
    names = await graph(gw)
    assert first not in names and second not in names
    assert any("undoing the steps that succeeded" in n for n in out["notices"])


async def test_a_compensation_that_fails_is_reported_and_its_effect_stays(gw: ServedGateway) -> None:
    name = f"stays-{uuid.uuid4().hex[:8]}"
    out = await coordinate(gw, {"pattern": "coordinated", "steps": [
        {"id": "make", "tool": "memory__create_entities", "arguments": entity(name),
         "compensate": {"tool": "mirror__fail"}},
        {"id": "boom", "tool": "echo__fail", "depends_on": ["make"]},
    ]})
    assert out["status"] == "failed"
    assert statuses(out) == {"make": "ok", "boom": "error"}
    assert "compensation failed" in out["steps"][0]["error"]
    assert any("compensation of step 'make' failed" in n for n in out["notices"])
    assert name in await graph(gw)


async def test_a_step_past_the_plans_deadline_times_out_and_is_cancelled_at_its_backend(
    gw: ServedGateway, tmp_path: Path
) -> None:
    marker = tmp_path / "cancelled"
    out = await coordinate(gw, {"pattern": "sequential", "timeout_s": 1.5, "steps": [
        {"id": "quick", "tool": "echo__echo", "arguments": {"message": "x"}},
        {"id": "long", "tool": "echo__slow", "arguments": {"seconds": 60, "marker": str(marker)}},
    ]})
    assert out["status"] == "failed"
    assert statuses(out) == {"quick": "ok", "long": "timeout"}
    assert "timeout_s of 1.5 s" in out["steps"][1]["error"]
    wait_until(lambda: marker.exists() and marker.read_text() == "cancelled", 30, "the backend to cancel the call")


async def test_a_client_that_cancels_a_plan_cancels_its_running_calls(gw: ServedGateway, tmp_path: Path) -> None:
    markers = [tmp_path / f"cancelled-{i}" for i in range(2)]
    started = [tmp_path / f"started-{i}" for i in range(2)]
    async with Client(gw.url) as client, anyio.create_task_group() as tg:
        async def plan() -> None:
            await client.call_tool("gateway__coordinate", {"pattern": "parallel", "steps": [
                {"tool": "echo__slow", "arguments": {"seconds": 60, "marker": str(m), "started": str(s)}}
                for m, s in zip(markers, started, strict=True)]})

        tg.start_soon(plan)
        await anyio.to_thread.run_sync(wait_until, lambda: all(s.exists() for s in started), 30, "both calls to start")
        tg.cancel_scope.cancel()
    for marker in markers:
        wait_until(lambda m=marker: m.exists() and m.read_text() == "cancelled", 30, f"{marker.name}")


# -- broadcast and auto


async def test_broadcast_calls_every_matching_tool_and_merges_results(gw: ServedGateway) -> None:
    out = await coordinate(gw, {"pattern": "broadcast", "steps": [
        {"id": "say", "tool": "*__echo", "arguments": {"message": "to all"}}]})
    assert out["status"] == "ok"
    assert statuses(out) == {"say.echo": "ok", "say.mirror": "ok"}
    assert {s["structured"]["server"] for s in out["steps"]} == {"echo", "mirror"}


async def test_auto_says_which_pattern_it_chose_and_why(gw: ServedGateway) -> None:
    independent = await coordinate(gw, {"steps": [
        {"tool": "echo__echo", "arguments": {"message": "a"}},
        {"tool": "mirror__echo", "arguments": {"message": "b"}}]})
    assert independent["pattern"] == "parallel"
    assert independent["notices"][0] == "auto chose parallel: 2 independent steps"
    chained = await coordinate(gw, {"steps": [
        {"id": "a", "tool": "echo__echo", "arguments": {"message": "a"}},
        {"tool": "mirror__echo", "arguments": {"message": "{{ a.text }}"}}]})
    assert chained["pattern"] == "sequential"
    glob = await coordinate(gw, {"steps": [{"tool": "*__fail"}]})
    assert glob["pattern"] == "broadcast" and glob["status"] == "failed"


async def test_progress_reports_each_step_as_it_finishes(gw: ServedGateway) -> None:
    seen: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append(f"{done:g}/{total:g} {message}")

    async with Client(gw.url) as client:
        result = await client.call_tool("gateway__coordinate", {"pattern": "sequential", "steps": [
            {"id": "one", "tool": "echo__echo", "arguments": {"message": "1"}},
            {"id": "two", "tool": "echo__echo", "arguments": {"message": "2"}}]}, progress_callback=progress)
    assert not result.is_error
    assert seen == ["1/2 step one ok", "2/2 step two ok"]


# -- validation: nothing runs


@pytest.mark.parametrize(("plan", "expected"), [
    ({"steps": [{"id": "a", "tool": "echo__ecko"}]}, "step 'a': unknown tool 'echo__ecko'; did you mean echo__echo"),
    ({"steps": [{"id": "a", "tool": "echo__echo"}, {"id": "a", "tool": "echo__echo"}]}, "step 'a': duplicate id"),
    ({"pattern": "coordinated", "steps": [{"id": "a", "tool": "echo__echo", "depends_on": ["b"]},
                                          {"id": "b", "tool": "echo__echo", "depends_on": ["a"]}]}, "form a cycle"),
    ({"pattern": "sequential", "steps": [{"id": "a", "tool": "echo__echo", "arguments": {"message": "{{ b.text }}"}},
                                         {"id": "b", "tool": "echo__echo"}]}, "which is not earlier"),
    ({"pattern": "coordinated", "steps": [{"id": "a", "tool": "echo__echo"},
                                          {"id": "b", "tool": "echo__echo", "arguments": {"message": "{{ a.text }}"}}]},
     "step 'b': {{ a.text }}: refers to step 'a', which is not among its depends_on"),
    ({"pattern": "zigzag", "steps": [{"tool": "echo__echo"}]}, "unknown pattern 'zigzag'"),
    ({"pattern": "parallel", "steps": [{"id": "x", "tool": "echo__echo", "timeout_s": -1}]}, "step 'x': timeout_s"),
])
async def test_a_bad_plan_is_refused_whole_naming_the_step_and_nothing_is_called(
    gw: ServedGateway, plan: dict[str, Any], expected: str
) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    plan["steps"].append({"id": "zz", "tool": "memory__create_entities", "arguments": entity(name)})
    async with Client(gw.url) as client:
        result = await client.call_tool("gateway__coordinate", plan)
    assert result.is_error
    assert "nothing was called" in text(result)
    assert expected in text(result), text(result)
    assert name not in await graph(gw)


# -- a backend that is down


async def test_a_down_backend_is_skipped_at_once_by_fallback_and_broadcast(tmp_path: Path) -> None:
    refuse = tmp_path / "flaky.down"
    config = (toml_table("flaky", echo_backend("flaky", args=[*echo_backend()["args"][:1], "--name", "flaky",
                                                                "--refuse-if", str(refuse)]))
              + toml_table("mirror", echo_backend("mirror")))
    with served(config, tmp_path, env={"MANIFOLD_RESTART_BACKOFF_S": "30"}) as gw:
        async with Client(gw.url) as client:
            pid = int(text(await client.call_tool("flaky__pid", {})))
        refuse.touch()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: gw.backend("flaky")["state"] == "unavailable", 30, "flaky to be unavailable")

        out = await coordinate(gw, {"pattern": "fallback", "steps": [
            {"id": "primary", "tool": "flaky__echo", "arguments": {"message": "hi"}},
            {"id": "spare", "tool": "mirror__echo", "arguments": {"message": "hi"}}]})
        assert out["status"] == "degraded"
        assert statuses(out) == {"primary": "skipped", "spare": "ok"}
        assert out["steps"][0]["attempts"] == 0 and "unavailable" in out["steps"][0]["error"]

        wide = await coordinate(gw, {"pattern": "broadcast", "steps": [{"tool": "*__echo",
                                                                        "arguments": {"message": "hi"}}]})
        assert wide["status"] == "degraded"
        assert statuses(wide) == {"s1.flaky": "skipped", "s1.mirror": "ok"}


# -- routes at start-up, and a pattern from a plugin


def manifold(tmp_path: Path, command: str, config_text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "manifold.toml"
    config.write_text(config_text)
    (tmp_path / "empty.env").touch()
    return subprocess.run([str(BIN / "manifold"), command, "--config", str(config), "--env-file", "empty.env"],
                          env={**os.environ, "MANIFOLD_PORT": "1"}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, start_new_session=True)


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_badly_shaped_route_stops_check_and_start_up_naming_the_route(tmp_path: Path, command: str) -> None:
    proc = manifold(tmp_path, command, toml_table("echo", echo_backend("echo"))
                    + '[routes.broken]\npattern = "sequential"\n'
                      'steps = [ { id = "a", tool = "echo__echo", arguments = { message = "{{ b.text }}" } } ]\n'
                    + '[routes.odd]\npattern = "zigzag"\nsteps = [ { tool = "echo__echo" } ]\n'
                    + '[routes.extra]\nsteps = [ { tool = "echo__echo" } ]\ncolour = "blue"\n')
    assert proc.returncode == 2, proc.stderr
    assert "routes.broken: step 'a': {{ b.text }}: refers to unknown step 'b'" in proc.stderr
    assert "routes.odd: unknown pattern 'zigzag'" in proc.stderr
    assert "routes.extra.colour: Extra inputs are not permitted" in proc.stderr


def test_a_route_naming_an_unknown_tool_stops_start_up(tmp_path: Path) -> None:
    proc = manifold(tmp_path, "serve", toml_table("echo", echo_backend("echo"))
                    + '[routes.typo]\nsteps = [ { id = "a", tool = "echo__ecko" } ]\n')
    assert proc.returncode == 2, proc.stderr
    assert "routes.typo: step 'a': unknown tool 'echo__ecko'; did you mean echo__echo" in proc.stderr
