"""Settings: sources and their precedence, backends from the environment, the config file shapes,
`${VAR}` interpolation, every config error reported at once (file, key, fix), no secret in any error,
and `manifold check`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import BIN

from gateway import plugins, settings
from gateway.errors import ConfigError


@pytest.fixture(scope="module")
def backend_types():
    return plugins.load().backend_types


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MANIFOLD_* variable of the outer environment, and no stray .env or config/ in the cwd."""
    for key in list(os.environ):
        if key.startswith("MANIFOLD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def load(backend_types, config: Path | None = None, env_file: Path | None = None, **flags):
    if config is not None:
        flags["config"] = config
    return settings.load(flags, env_file=env_file, backend_types=backend_types)


def problems(backend_types, config: Path | None = None, env_file: Path | None = None, **flags):
    with pytest.raises(ConfigError) as info:
        load(backend_types, config, env_file, **flags)
    return info.value


# -- sources and precedence -----------------------------------------------------------------


def test_defaults_without_any_source(backend_types):
    s = load(backend_types).settings
    assert (s.host, s.port, s.path, s.separator) == ("127.0.0.1", 8765, "/mcp", "__")
    assert s.call_timeout_s == 60 and s.stateless is False and s.max_body_bytes == 8 * 1024 * 1024
    assert s.auth_token is None and s.tokens() == []


def test_precedence_flag_env_envfile_table_default(tmp_path, monkeypatch, backend_types):
    # Each setting is set in every source down to the one that must win it.
    config = write(tmp_path / "m.toml", """
[gateway]
port = 1111
host = "127.0.0.11"
path = "/from-table"
separator = "--"
""")
    env_file = write(tmp_path / "e.env",
                     "MANIFOLD_PORT=2222\nMANIFOLD_HOST=127.0.0.22\nMANIFOLD_PATH=/from-env-file\n")
    monkeypatch.setenv("MANIFOLD_PORT", "3333")
    monkeypatch.setenv("MANIFOLD_HOST", "127.0.0.33")
    s = load(backend_types, config, env_file, port=4444).settings
    assert s.port == 4444  # flag > env
    assert s.host == "127.0.0.33"  # env > env file
    assert s.path == "/from-env-file"  # env file > [gateway] table
    assert s.separator == "--"  # [gateway] table > default
    assert s.call_timeout_s == 60  # default


def test_flag_none_means_not_given(tmp_path, monkeypatch, backend_types):
    monkeypatch.setenv("MANIFOLD_PORT", "3333")
    assert load(backend_types, port=None, host=None).settings.port == 3333


def test_env_file_defaults_to_dotenv_in_cwd_and_may_be_absent(tmp_path, backend_types):
    assert load(backend_types).settings.port == 8765  # no .env: silently absent
    write(tmp_path / ".env", "MANIFOLD_PORT=2345\n")
    assert load(backend_types).settings.port == 2345


def test_explicit_env_file_missing_is_an_error(tmp_path, backend_types):
    err = problems(backend_types, env_file=tmp_path / "nope.env")
    assert any("nope.env" in p.source and "not found" in p.message for p in err.problems)


def test_config_path_from_env(tmp_path, monkeypatch, backend_types):
    config = write(tmp_path / "elsewhere.toml", "[gateway]\nport = 1212\n")
    monkeypatch.setenv("MANIFOLD_CONFIG", str(config))
    cfg = load(backend_types)
    assert cfg.settings.port == 1212 and cfg.source == str(config)


def test_default_config_file_is_read(tmp_path, backend_types):
    (tmp_path / "config").mkdir()
    write(tmp_path / "config" / "manifold.toml", "[gateway]\nport = 1313\n")
    assert load(backend_types).settings.port == 1313


def test_auth_tokens_are_secret_and_comma_separated(monkeypatch, backend_types):
    monkeypatch.setenv("MANIFOLD_AUTH_TOKEN", "tok-one-secret, tok-two-secret")
    s = load(backend_types).settings
    assert s.tokens() == ["tok-one-secret", "tok-two-secret"]
    assert "tok-one-secret" not in repr(s) and "tok-one-secret" not in str(s.model_dump())


# -- backends from the environment ------------------------------------------------------------


def test_backend_declared_in_env_file_alone(tmp_path, backend_types):
    env_file = write(tmp_path / "e.env", "\n".join([
        "MANIFOLD_BACKENDS__TIME__COMMAND=mcp-server-time",
        'MANIFOLD_BACKENDS__TIME__ARGS=["--local-timezone", "UTC"]',
        "MANIFOLD_BACKENDS__TIME__TIMEOUT_S=12",
        "MANIFOLD_BACKENDS__REMOTE__URL=http://127.0.0.1:9/mcp",
    ]) + "\n")
    backends = load(backend_types, env_file=env_file).backends
    time = backends["time"]
    assert time.type == "stdio" and time.command == "mcp-server-time"
    assert time.args == ["--local-timezone", "UTC"] and time.timeout_s == 12
    assert backends["remote"].type == "http" and backends["remote"].url == "http://127.0.0.1:9/mcp"


def test_route_declared_in_env_file_alone(tmp_path, backend_types):
    env_file = write(tmp_path / "e.env", "\n".join([
        "MANIFOLD_ROUTES__HELLO__PATTERN=sequential",
        'MANIFOLD_ROUTES__HELLO__STEPS=[{"tool": "ex__greet", "arguments": {"name": "{{ input.who }}"}}]',
    ]) + "\n")
    routes = load(backend_types, env_file=env_file).routes
    assert routes["hello"] == {"pattern": "sequential",
                               "steps": [{"tool": "ex__greet", "arguments": {"name": "{{ input.who }}"}}]}


def test_backend_declared_in_process_env_alone(monkeypatch, backend_types):
    monkeypatch.setenv("MANIFOLD_BACKENDS__TIME__COMMAND", "mcp-server-time")
    monkeypatch.setenv("MANIFOLD_BACKENDS__TIME__ARGS", '["--local-timezone", "Europe/Paris"]')
    time = load(backend_types).backends["time"]
    assert time.command == "mcp-server-time" and time.args == ["--local-timezone", "Europe/Paris"]


def test_env_overrides_a_file_backend_key_by_key(tmp_path, monkeypatch, backend_types):
    config = write(tmp_path / "m.toml", """
[backends.time]
command = "from-file"
args = ["kept"]
""")
    monkeypatch.setenv("MANIFOLD_BACKENDS__TIME__COMMAND", "from-env")
    time = load(backend_types, config).backends["time"]
    assert time.command == "from-env" and time.args == ["kept"]


# -- config file shapes -----------------------------------------------------------------------


def test_toml_backends_types_inferred_and_explicit(tmp_path, backend_types):
    config = write(tmp_path / "m.toml", """
[backends.time]
command = "mcp-server-time"
args = ["--local-timezone", "UTC"]
env = { TZ = "UTC" }
tools.deny = ["*convert*"]

[backends.remote]
url = "http://127.0.0.1:3001/mcp"
headers = { Authorization = "Bearer abc" }

[backends.hello]
type = "example"
greeting = "Hi"
namespace = ""
""")
    cfg = load(backend_types, config)
    assert cfg.backend_types == {"time": "stdio", "remote": "http", "hello": "example"}
    assert cfg.backends["time"].env["TZ"].get_secret_value() == "UTC"
    assert cfg.backends["time"].tools.deny == ["*convert*"]
    assert cfg.backends["remote"].headers["Authorization"].get_secret_value() == "Bearer abc"
    assert cfg.backends["hello"].greeting == "Hi" and cfg.backends["hello"].namespace == ""


def test_mcp_servers_json_shape(tmp_path, backend_types):
    config = write(tmp_path / "claude_desktop_config.json", json.dumps({"mcpServers": {
        "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"], "env": {"TZ": "UTC"}},
        "remote": {"url": "http://127.0.0.1:3001/mcp", "headers": {"X-Key": "k"}},
        "typed": {"type": "http", "url": "http://127.0.0.1:3002/mcp"},
        "streamable": {"type": "streamable-http", "url": "http://127.0.0.1:3004/mcp"},
        "legacy": {"type": "sse", "url": "http://127.0.0.1:3003/sse"},
        "explicit": {"type": "stdio", "command": "x"},
        "off": {"command": "y", "disabled": True},
    }}))
    cfg = load(backend_types, config)
    b = cfg.backends
    assert b["time"].type == "stdio" and b["time"].args == ["--local-timezone", "UTC"]
    assert b["time"].env["TZ"].get_secret_value() == "UTC"
    assert b["remote"].type == "http" and b["remote"].transport == "streamable-http"
    assert b["remote"].headers["X-Key"].get_secret_value() == "k"
    assert b["typed"].type == "http" and b["typed"].transport == "streamable-http"
    assert b["streamable"].type == "http" and b["streamable"].transport == "streamable-http"
    assert b["legacy"].type == "http" and b["legacy"].transport == "sse"
    assert b["explicit"].type == "stdio"
    assert b["off"].enabled is False


def test_mcp_servers_json_may_carry_gateway_settings(tmp_path, backend_types):
    config = write(tmp_path / "m.json", json.dumps({"gateway": {"port": 1414}, "mcpServers": {}}))
    assert load(backend_types, config).settings.port == 1414


# -- ${VAR} and ${VAR:-default} ---------------------------------------------------------------


def test_interpolation_from_env_env_file_and_defaults(tmp_path, monkeypatch, backend_types):
    config = write(tmp_path / "m.toml", """
[gateway]
port = "${GW_PORT:-1515}"

[backends.remote]
url = "http://${REMOTE_HOST}:${REMOTE_PORT:-3001}/mcp"
headers = { Authorization = "Bearer ${REMOTE_TOKEN}" }

[backends.time]
command = "${TIME_CMD:-mcp-server-time}"
args = ["--local-timezone", "${TZ_NAME}"]
""")
    env_file = write(tmp_path / "e.env", "REMOTE_TOKEN=from-env-file\nREMOTE_HOST=file-host\nTZ_NAME=UTC\n")
    monkeypatch.setenv("REMOTE_HOST", "env-host")  # the process environment beats the env file
    cfg = load(backend_types, config, env_file)
    assert cfg.settings.port == 1515
    assert cfg.backends["remote"].url == "http://env-host:3001/mcp"
    assert cfg.backends["remote"].headers["Authorization"].get_secret_value() == "Bearer from-env-file"
    assert cfg.backends["time"].command == "mcp-server-time"
    assert cfg.backends["time"].args == ["--local-timezone", "UTC"]


def test_interpolation_default_may_be_empty_and_set_value_wins(tmp_path, monkeypatch, backend_types):
    config = write(tmp_path / "m.toml", '[backends.t]\ncommand = "run${SUFFIX:-}"\nargs = ["${A:-x}"]\n')
    monkeypatch.setenv("A", "set")
    t = load(backend_types, config).backends["t"]
    assert t.command == "run" and t.args == ["set"]


# -- every error, at once ---------------------------------------------------------------------

ALL_ERRORS = """
[gateway]
port = 8080
colour = "blue"

[backends.gateway]
command = "reserved"

[backends.extra]
command = "x"
colour = "red"

[backends.wrongtype]
command = 5

[backends.badtimeout]
command = "x"
timeout_s = "soon"

[backends.missingvar]
url = "http://${NOT_SET_ANYWHERE}/mcp"

[backends.unknown]
type = "teleport"

[backends.notype]
enabled = true

[backends."bad name!"]
command = "x"
"""


def test_every_problem_is_reported_at_once_with_file_key_and_fix(tmp_path, backend_types):
    config = write(tmp_path / "all.toml", ALL_ERRORS)
    err = problems(backend_types, config)
    by_key = {p.key: p for p in err.problems}
    expected = {
        "gateway.colour": "unknown setting",
        "backends.gateway": "reserved",
        "backends.extra.colour": "Extra inputs",
        "backends.wrongtype.command": "valid string",
        "backends.badtimeout.timeout_s": "valid number",
        "backends.missingvar.url": "NOT_SET_ANYWHERE",
        "backends.unknown.type": "teleport",
        "backends.notype.type": "no type, command or url",
        "backends.bad name!": "backend names",
    }
    for key, fragment in expected.items():
        assert key in by_key, f"no problem reported for {key}: {err}"
        assert fragment in by_key[key].message, by_key[key]
    for p in err.problems:
        assert p.source == str(config), p
        assert p.fix, f"no fix for {p}"
        assert str(config) in str(p) and p.key in str(p) and p.fix in str(p)
    assert len(err.problems) == len(expected), err
    text = str(err)
    assert f"{len(expected)} configuration problem(s)" in text
    assert all(k in text for k in expected)


def test_fixes_say_what_to_do(tmp_path, backend_types):
    err = problems(backend_types, write(tmp_path / "all.toml", ALL_ERRORS))
    fix = {p.key: p.fix for p in err.problems}
    assert "command" in fix["backends.extra.colour"]  # lists the known keys
    assert "stdio" in fix["backends.unknown.type"] and "pip install" in fix["backends.unknown.type"]
    assert "rename" in fix["backends.gateway"]
    assert "NOT_SET_ANYWHERE" in fix["backends.missingvar.url"] and ":-" in fix["backends.missingvar.url"]
    assert "port" in fix["gateway.colour"]  # lists the known settings


def test_bad_toml_is_reported_with_the_file(tmp_path, backend_types):
    config = write(tmp_path / "broken.toml", "[backends.time\ncommand = 'x'\n")
    err = problems(backend_types, config)
    assert len(err.problems) == 1
    p = err.problems[0]
    assert p.source == str(config) and "invalid TOML" in p.message and "line 1" in p.message and p.fix


def test_duplicate_backend_in_toml_is_reported(tmp_path, backend_types):
    config = write(tmp_path / "dup.toml",
                   '[backends.time]\ncommand = "a"\n\n[backends.time]\ncommand = "b"\n')
    err = problems(backend_types, config)
    assert err.problems[0].source == str(config) and "invalid TOML" in err.problems[0].message


def test_duplicate_backend_in_json_is_reported(tmp_path, backend_types):
    # JSON objects may repeat a key; the second silently replacing the first would hide a backend.
    config = write(tmp_path / "dup.json",
                   '{"mcpServers": {"time": {"command": "a"}, "time": {"command": "b"}}}')
    err = problems(backend_types, config)
    assert any("time" in p.key and "duplicate" in p.message.lower() for p in err.problems), err


def test_bad_json_is_reported_with_the_file(tmp_path, backend_types):
    config = write(tmp_path / "broken.json", '{"mcpServers": {"time": }')
    err = problems(backend_types, config)
    assert err.problems[0].source == str(config) and "invalid JSON" in err.problems[0].message


def test_missing_explicit_config_file(tmp_path, monkeypatch, backend_types):
    err = problems(backend_types, tmp_path / "absent.toml")
    assert err.problems[0].key == "config" and "not found" in err.problems[0].message
    assert str(tmp_path / "absent.toml") in str(err)
    monkeypatch.setenv("MANIFOLD_CONFIG", str(tmp_path / "absent-too.toml"))
    err = problems(backend_types)
    assert "absent-too.toml" in str(err) and "MANIFOLD_CONFIG" in err.problems[0].fix


def test_missing_config_is_collected_with_other_problems(tmp_path, monkeypatch, backend_types):
    monkeypatch.setenv("MANIFOLD_PORT", "not-a-port")
    err = problems(backend_types, tmp_path / "absent.toml")
    keys = [p.key for p in err.problems]
    assert "config" in keys and any("port" in k for k in keys), err


def test_bad_gateway_setting_from_env(monkeypatch, backend_types):
    monkeypatch.setenv("MANIFOLD_LOG_LEVEL", "chatty")
    monkeypatch.setenv("MANIFOLD_CALL_TIMEOUT_S", "-1")
    err = problems(backend_types)
    keys = " ".join(p.key for p in err.problems)
    assert "log_level" in keys and "call_timeout_s" in keys and "MANIFOLD_LOG_LEVEL" in keys


def test_bad_backend_from_env_file_names_the_key(tmp_path, backend_types):
    env_file = write(tmp_path / "e.env",
                     "MANIFOLD_BACKENDS__TIME__COMMAND=x\nMANIFOLD_BACKENDS__TIME__COLOUR=red\n")
    err = problems(backend_types, env_file=env_file)
    assert any(p.key == "backends.time.colour" for p in err.problems), err


def test_route_named_like_a_backend_is_an_error(tmp_path, backend_types):
    config = write(tmp_path / "m.toml", """
[backends.time]
command = "x"

[routes.time]
pattern = "sequential"
steps = []
""")
    err = problems(backend_types, config)
    assert any(p.key == "routes.time" for p in err.problems), err


def test_unknown_top_level_table(tmp_path, backend_types):
    err = problems(backend_types, write(tmp_path / "m.toml", "[servers.time]\ncommand = 'x'\n"))
    assert err.problems[0].key == "servers" and err.problems[0].fix


# -- no secret in any error -------------------------------------------------------------------

SECRETS = ("hdr-secret-4f1a", "env-secret-9b2c", "file-secret-7d3e", "token-secret-1a2b", "int-secret-5566")


def test_secrets_never_appear_in_config_errors(tmp_path, monkeypatch, backend_types):
    config = write(tmp_path / "m.toml", """
[backends.remote]
url = "http://127.0.0.1:1/mcp"
headers = { Authorization = "Bearer hdr-secret-4f1a" }
colour = "red"
timeout_s = "${FILE_SECRET}"

[backends.child]
command = "x"
env = { API_KEY = "env-secret-9b2c", NUMBER = 5566 }
args = "int-secret-5566"
retries = 3
""")
    env_file = write(tmp_path / "e.env", "FILE_SECRET=file-secret-7d3e\nMANIFOLD_PORT=token-secret-1a2b\n")
    monkeypatch.setenv("MANIFOLD_AUTH_TOKEN", "token-secret-1a2b")
    err = problems(backend_types, config, env_file)
    text = str(err) + repr(err.problems)
    assert len(err.problems) >= 5, err  # the bad keys were found ...
    for secret in SECRETS:
        assert secret not in text  # ... and no value was shown
    assert "5566" not in text


# -- manifold check -----------------------------------------------------------------------------


def manifold(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MANIFOLD_")}
    full_env.update({"COLUMNS": "400", **(env or {})})
    return subprocess.run([str(BIN / "manifold"), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=60)


def test_manifold_check_ok(tmp_path):
    config = write(tmp_path / "m.toml", """
[backends.time]
command = "mcp-server-time"

[backends.hello]
type = "example"
""")
    env_file = write(tmp_path / "e.env", "MANIFOLD_BACKENDS__REMOTE__URL=http://127.0.0.1:9/mcp\n")
    proc = manifold("check", "--config", str(config), "--env-file", str(env_file), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout and "3 backend(s)" in proc.stdout
    for line in ("time: type stdio", "hello: type example", "remote: type http"):
        assert line in proc.stdout


def test_manifold_check_reports_every_problem_and_exits_2(tmp_path):
    config = write(tmp_path / "all.toml", ALL_ERRORS + """
[backends.secretive]
url = "http://127.0.0.1:1/mcp"
headers = { Authorization = "Bearer hdr-secret-4f1a" }
timeout_s = "${FILE_SECRET}"
""")
    env_file = write(tmp_path / "e.env", "FILE_SECRET=file-secret-7d3e\n")
    proc = manifold("check", "--config", str(config), "--env-file", str(env_file), cwd=tmp_path,
                    env={"MANIFOLD_AUTH_TOKEN": "token-secret-1a2b"})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    output = proc.stdout + proc.stderr
    for key in ("gateway.colour", "backends.gateway", "backends.extra.colour", "backends.wrongtype.command",
                "backends.badtimeout.timeout_s", "backends.missingvar.url", "backends.unknown.type",
                "backends.notype.type", "backends.secretive.timeout_s"):
        assert key in output, f"{key} missing from:\n{output}"
    assert str(config) in output and "fix:" in output
    for secret in SECRETS:
        assert secret not in output


def test_manifold_check_missing_config_exits_2(tmp_path):
    proc = manifold("check", "--config", str(tmp_path / "absent.toml"), cwd=tmp_path)
    assert proc.returncode == 2 and "absent.toml" in proc.stderr and "not found" in proc.stderr
