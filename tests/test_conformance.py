"""The official MCP conformance suite (npm @modelcontextprotocol/conformance), run through the gateway.

The suite's server scenarios are run twice: against our conformance backend
(tests/servers/conformance_server.py) directly, then against a gateway serving
that backend in transparent mode (`namespace = ""`, so names are unchanged).
What passes directly must pass through the gateway; a scenario that does not is
a gateway bug, or a listed known difference with its reason.

`make test` installs the pinned suite under .cache/npm (Makefile NPM_PACKAGES).
Version 0.1.13 is the newest that runs on Node 20 (0.1.14 and later import
`fs.globSync`, which is Node 22).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from conftest import NPM, ROOT, free_port, stop_group
from mcp import Client

from gateway.testing import listening, served

SUITE = NPM / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
BACKEND = ROOT / "tests" / "servers" / "conformance_server.py"
SUITE_TIMEOUT_S = 240

EXTRA_SCENARIOS = ["json-schema-2020-12"]
"""Scenarios outside the default (active) suite that we run too: the suite has it as pending, but keeping
`$schema`, `$defs` and `additionalProperties` of a tool's input schema intact is the catalog's job."""

KNOWN_DIFFERENCES: dict[str, str] = {}
"""Scenarios that pass directly but not through the gateway, each with why. Empty: none known."""

Results = dict[str, list[dict[str, Any]]]
"""Scenario name -> the suite's checks for it (each with `id`, `status`, maybe `errorMessage`)."""

_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def run_suite(url: str, out: Path, scenario: str | None = None) -> Results:
    """Run the suite's server scenarios (the default suite, or one) against `url`; their checks by scenario."""
    out.mkdir(parents=True)
    command = ["node", str(SUITE), "server", "--url", url, "--output-dir", str(out)]
    if scenario:
        command += ["--scenario", scenario]
    proc = subprocess.Popen(command, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=SUITE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the conformance suite against {url} did not finish in {SUITE_TIMEOUT_S} s") from None
    finally:
        stop_group(proc)
    text = output.decode(errors="replace")
    results: Results = {}
    for checks in sorted(out.glob("*/checks.json")):
        match = _RESULT_DIR.match(checks.parent.name)
        assert match, f"unexpected result folder {checks.parent.name}"
        results[match["scenario"]] = json.loads(checks.read_text())
    expected = 1 if scenario else int(_match(r"Running active suite \((\d+) scenarios\)", text))
    assert len(results) == expected, f"expected results of {expected} scenarios, got {sorted(results)}:\n{text}"
    return results


def _match(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in the suite's output:\n{text}"
    return found[1]


def failures(results: Results) -> dict[str, list[str]]:
    """The failing scenarios, each with its failed checks: `check-id: error message`."""
    failed = {}
    for scenario, checks in results.items():
        bad = [f"{c.get('id')}: {c.get('errorMessage', '(no message)')}" for c in checks if c["status"] == "FAILURE"]
        if bad or not checks:
            failed[scenario] = bad or ["(no checks ran)"]
    return failed


def run_all(url: str, out: Path) -> Results:
    results = run_suite(url, out / "default")
    for name in EXTRA_SCENARIOS:
        results.update(run_suite(url, out / name, name))
    return results


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The conformance backend over streamable HTTP, as a subprocess in its own process group."""
    if not SUITE.exists() or shutil.which("node") is None:
        pytest.skip(f"{SUITE} (or node) missing: run `make test` (it installs the npm conformance suite)")
    port = free_port()
    log = tmp_path_factory.mktemp("conformance-backend") / "backend.log"
    with listening([sys.executable, str(BACKEND), "--port", str(port)], port, log=log):
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="module")
def direct(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Results:
    return run_all(backend, tmp_path_factory.mktemp("conformance-direct"))


@pytest.fixture(scope="module")
def gateway_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway serving the backend in transparent mode: exposed names are the backend's own."""
    config = f'[backends.conf]\nurl = "{backend}"\nnamespace = ""\n'
    with served(config, tmp_path_factory.mktemp("conformance-gateway")) as gw:
        assert gw.backend("conf")["state"] == "healthy"
        yield gw.url


def test_backend_passes_every_scenario_directly(direct: Results) -> None:
    """Our backend implements what the suite asks; else the comparison below would cover less than it says."""
    assert not failures(direct), f"scenarios failing against the backend itself: {failures(direct)}"


def test_gateway_passes_what_the_backend_passes(direct: Results, gateway_url: str, tmp_path: Path) -> None:
    through = run_all(gateway_url, tmp_path)
    assert sorted(through) == sorted(direct)
    passed_direct = set(direct) - set(failures(direct))
    failed_through = failures(through)
    regressions = {s: why for s, why in failed_through.items() if s in passed_direct and s not in KNOWN_DIFFERENCES}
    assert not regressions, f"scenarios that pass directly but fail through the gateway: {regressions}"
    stale = [s for s in KNOWN_DIFFERENCES if s not in failed_through]
    assert not stale, f"known differences that now pass through the gateway (remove them from the list): {stale}"


async def test_log_level_filters_forwarded_logs(gateway_url: str) -> None:
    """`logging/setLevel` at the gateway sets which of a backend's log messages reach this client."""
    logs: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(f"{params.level}: {params.data}")

    async with Client(gateway_url, mode="legacy", logging_callback=on_log) as client:  # logging is handshake-era
        await client.set_logging_level("warning")
        await client.call_tool("test_tool_with_logging", {})
        assert logs == []  # the backend logs at info
        await client.set_logging_level("info")
        await client.call_tool("test_tool_with_logging", {})
        assert logs == ["info: Tool execution started", "info: Tool processing data", "info: Tool execution completed"]
