"""The `manifold` command's `tools`, `call` and `status`, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from conftest import BIN, echo_backend, toml_table

from gateway.testing import ServedGateway


def config(tmp_path: Path) -> Path:
    path = tmp_path / "manifold.toml"
    path.write_text(toml_table("echo", echo_backend("echo")) + toml_table("hi", {"type": "example"}))
    (tmp_path / "empty.env").touch()
    return path


def manifold(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(BIN / "manifold"), *args, "--env-file", str(tmp_path / "empty.env")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)


def test_tools_lists_the_catalogue_with_each_backends_health(tmp_path: Path) -> None:
    cfg = str(config(tmp_path))
    listed = manifold(tmp_path, "tools", "--json", "--config", cfg)
    assert listed.returncode == 0, listed.stderr
    tools = {t["name"]: t for t in json.loads(listed.stdout)["tools"]}
    assert tools["echo__echo"]["backend"] == "echo" and tools["echo__echo"]["state"] == "healthy"
    assert tools["hi__greet"]["backend"] == "hi" and "gateway__coordinate" in tools
    table = manifold(tmp_path, "tools", "--config", cfg)
    assert table.returncode == 0 and "echo__echo" in table.stdout and "hi__greet" in table.stdout


def test_call_prints_the_result_and_exits_by_it(tmp_path: Path) -> None:
    cfg = str(config(tmp_path))
    ok = manifold(tmp_path, "call", "echo__echo", "--args", '{"message": "hi there"}', "--config", cfg)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["structuredContent"] == {"echo": "hi there", "server": "echo"}
    failed = manifold(tmp_path, "call", "echo__fail", "--args", "{}", "--config", cfg)
    assert failed.returncode == 1 and json.loads(failed.stdout)["isError"] is True
    unknown = manifold(tmp_path, "call", "echo__ecko", "--args", "{}", "--config", cfg)
    assert unknown.returncode == 2 and "unknown tool 'echo__ecko'; did you mean echo__echo" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad = manifold(tmp_path, "call", "echo__echo", "--args", "{nope", "--config", cfg)
    assert bad.returncode == 2 and "--args is not JSON" in bad.stderr


def test_status_reads_a_running_gateway(serve_gateway: Callable[..., ServedGateway], tmp_path: Path) -> None:
    gw = serve_gateway(config(tmp_path).read_text())
    as_json = manifold(tmp_path, "status", "--url", gw.base, "--json")
    assert as_json.returncode == 0, as_json.stderr
    states = {b["name"]: b["state"] for b in json.loads(as_json.stdout)["backends"]}
    assert states == {"echo": "healthy", "hi": "healthy"}
    table = manifold(tmp_path, "status", "--url", gw.base)
    assert table.returncode == 0 and "echo" in table.stdout and "healthy" in table.stdout
    down = manifold(tmp_path, "status", "--url", "http://127.0.0.1:9")
    assert down.returncode != 0 and "cannot read http://127.0.0.1:9/status" in down.stderr
