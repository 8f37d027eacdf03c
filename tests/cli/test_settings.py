"""coordinator.settings: temporal-dev.yaml, client settings precedence, connect errors, UI links."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from cli.config_file import PROJECT_CONFIG, find_config, load_config
from cli.temporal_client import TemporalUnreachableError, connect, resolve_client_settings
from coordinator.settings import ClientSettings, ConfigError, DevServerConfig, execution_ui_url

YAML = """\
server:
  ip: 127.0.0.1
  port: 17001
  ui_port: 18001
  db_file: data/test.db
  namespace: yaml-ns
  state_dir: state
client:
  task_queue: yaml-queue
worker:
  workspace_root: ws
  artifacts_root: ../artifacts
"""

PROFILE_TOML = """\
[profile.default]
address = "default-profile:7233"

[profile.prod]
address = "prod.example.com:7233"
namespace = "prod-ns"
api_key = "profile-key"

[profile.prod.tls]
client_cert_path = "/certs/client.pem"
client_key_path = "/certs/client.key"

[profile.prod.grpc_meta]
x-team = "coord"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient TEMPORAL_*/COORD_* settings and no user config file leak into a test."""
    for name in list(os.environ):
        if name.startswith(("TEMPORAL_", "COORD_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def write_yaml(folder: Path, text: str = YAML) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "temporal-dev.yaml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- temporal-dev.yaml


def test_project_yaml_matches_builtin_defaults() -> None:
    # The defaults apply when no file is found (e.g. an installed wheel): keep them in step.
    assert load_config(PROJECT_CONFIG) == DevServerConfig.defaults(PROJECT_CONFIG.parent)


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path: Path) -> None:
    config = load_config(write_yaml(tmp_path / "proj" / "conf"))
    base = tmp_path / "proj" / "conf"
    assert config.server.db_file == base / "data" / "test.db"
    assert config.server.state_dir == base / "state"
    assert config.worker.workspace_root == base / "ws"
    assert config.worker.artifacts_root == tmp_path / "proj" / "artifacts"
    assert config.worker.state_dir == base / ".coord"  # a default, still relative to the file


def test_missing_sections_take_defaults_and_null_db_means_in_memory(tmp_path: Path) -> None:
    config = load_config(write_yaml(tmp_path, "server:\n  db_file: null\n  ui_port: null\n"))
    assert config.server.db_file is None
    assert config.server.effective_ui_port == 7233 + 1000
    assert config.client.task_queue == "coordinator"
    assert config.server.search_attributes["CoordinatorStatus"] == "Keyword"


def test_no_file_anywhere_gives_defaults_relative_to_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cli.config_file.PROJECT_CONFIG", Path("/nonexistent/x.yaml"))
    assert find_config() is None
    config = load_config()
    assert config.server.address == "127.0.0.1:7233"
    assert config.server.state_dir == Path.cwd() / ".temporal"


def test_find_config_env_then_walk_up_then_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_config(tmp_path) == PROJECT_CONFIG  # nothing above tmp_path: the project's
    found = write_yaml(tmp_path / "repo")
    nested = tmp_path / "repo" / "a" / "b"
    nested.mkdir(parents=True)
    assert find_config(nested) == found
    monkeypatch.chdir(nested)
    assert find_config() == found
    monkeypatch.setenv("COORD_CONFIG", str(tmp_path / "elsewhere.yaml"))
    assert find_config() == tmp_path / "elsewhere.yaml"
    with pytest.raises(ConfigError, match=r"elsewhere\.yaml: cannot read"):
        load_config()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  port: [1\n", r"temporal-dev\.yaml:\d+:\d+: invalid YAML"),
        ("server:\n  ip: x\n  port: high\n", r"temporal-dev\.yaml:3: server\.port: Input should"),
        ("server:\n  prot: 1\n", r"temporal-dev\.yaml:2: server\.prot: Extra inputs"),
        ("client: {}\nextra: 1\n", r"temporal-dev\.yaml:2: extra: Extra inputs"),
        (
            "server:\n  search_attributes:\n    Foo: String\n",
            r"temporal-dev\.yaml:3: server\.search_attributes\.Foo: Input should be 'Text'",
        ),
        ("server:\n  port: 70000\n", r"server\.port: Input should be less than or equal"),
        ("- a list\n", r"temporal-dev\.yaml: expected a mapping"),
    ],
)
def test_bad_yaml_names_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write_yaml(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- precedence


def test_yaml_is_the_fallback(tmp_path: Path) -> None:
    settings = resolve_client_settings(config_path=write_yaml(tmp_path))
    assert settings.address == "127.0.0.1:17001"
    assert settings.namespace == "yaml-ns"
    assert settings.task_queue == "yaml-queue"
    assert settings.tls is False
    assert settings.api_key is None
    assert settings.ui_url == "http://127.0.0.1:18001"
    assert settings.workspace_root == tmp_path / "ws"


def test_env_beats_yaml_and_flags_beat_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_yaml(tmp_path)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "env-host:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "env-ns")
    monkeypatch.setenv("COORD_TASK_QUEUE", "env-queue")
    monkeypatch.setenv("COORD_WORKSPACE_ROOT", "rel/ws")
    monkeypatch.setenv("COORD_ARTIFACTS_ROOT", "/abs/artifacts")
    from_env = resolve_client_settings(config_path=config)
    assert (from_env.address, from_env.namespace, from_env.task_queue) == (
        "env-host:7233",
        "env-ns",
        "env-queue",
    )
    assert from_env.workspace_root == Path.cwd() / "rel" / "ws"
    assert from_env.artifacts_root == Path("/abs/artifacts")
    assert from_env.ui_url is None  # not the dev server of the YAML: UI unknown
    monkeypatch.setenv("TEMPORAL_ADDRESS", "localhost:17001")
    assert resolve_client_settings(config_path=config).ui_url == "http://127.0.0.1:18001"
    monkeypatch.setenv("TEMPORAL_ADDRESS", "env-host:7233")

    from_flags = resolve_client_settings(
        address="flag-host:1", namespace="flag-ns", task_queue="flag-queue", config_path=config
    )
    assert (from_flags.address, from_flags.namespace, from_flags.task_queue) == (
        "flag-host:1",
        "flag-ns",
        "flag-queue",
    )


def test_api_key_implies_tls_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_API_KEY", "secret-key")
    settings = resolve_client_settings()
    assert settings.tls is True
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "secret-key"
    assert "secret-key" not in repr(settings)

    monkeypatch.setenv("TEMPORAL_TLS", "false")
    assert resolve_client_settings().tls is False
    monkeypatch.setenv("TEMPORAL_TLS", "maybe")
    with pytest.raises(ConfigError, match="TEMPORAL_TLS"):
        resolve_client_settings()


def test_tls_paths_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", "/certs/c.pem")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", "/certs/c.key")
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "/certs/ca.pem")
    settings = resolve_client_settings()
    assert settings.tls is True  # certificates imply TLS
    assert settings.tls_cert_path == Path("/certs/c.pem")
    assert settings.tls_key_path == Path("/certs/c.key")
    assert settings.tls_ca_path == Path("/certs/ca.pem")


def test_env_config_profile_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "temporal.toml"
    toml.write_text(PROFILE_TOML)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(toml))
    assert resolve_client_settings().address == "default-profile:7233"

    monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
    prod = resolve_client_settings()
    assert prod.address == "prod.example.com:7233"
    assert prod.namespace == "prod-ns"
    assert prod.api_key is not None
    assert prod.api_key.get_secret_value() == "profile-key"
    assert prod.tls is True
    assert prod.tls_cert_path == Path("/certs/client.pem")
    assert prod.tls_key_path == Path("/certs/client.key")
    assert prod.rpc_metadata == {"x-team": "coord"}
    assert prod.task_queue == "coordinator"  # not a Temporal setting: still from the YAML

    monkeypatch.setenv("TEMPORAL_ADDRESS", "env-host:7233")  # env beats the profile file
    assert resolve_client_settings().address == "env-host:7233"
    assert resolve_client_settings(address="flag:1").address == "flag:1"
    monkeypatch.delenv("TEMPORAL_ADDRESS")

    assert resolve_client_settings(profile="default").address == "default-profile:7233"
    with pytest.raises(ConfigError, match="nope"):
        resolve_client_settings(profile="nope")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml: no such file"):
        resolve_client_settings()


def test_default_profile_location_is_read_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_file = Path(os.environ["XDG_CONFIG_HOME"]) / "temporalio" / "temporal.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(PROFILE_TOML)
    # A stray user file must not redirect the local dev server setup...
    assert resolve_client_settings().address == load_config().server.address
    # ...but a profile name selects it.
    monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
    assert resolve_client_settings().address == "prod.example.com:7233"


def test_ui_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    headless = write_yaml(tmp_path / "h", "server:\n  headless: true\n")
    assert resolve_client_settings(config_path=headless).ui_url is None
    cloud = resolve_client_settings(address="my-ns.a1b2c.tmprl.cloud:7233")
    assert cloud.ui_url == "https://cloud.temporal.io"
    monkeypatch.setenv("COORD_UI_URL", "https://temporal.example.com/")
    assert resolve_client_settings(address="x:1").ui_url == "https://temporal.example.com"


def settings_for(
    address: str, *, ui_url: str | None = None, namespace: str = "default"
) -> ClientSettings:
    return ClientSettings(
        address=address,
        namespace=namespace,
        task_queue="q",
        ui_url=ui_url,
        workspace_root=Path("/w"),
        artifacts_root=Path("/a"),
    )


def test_execution_ui_url() -> None:
    settings = settings_for("h:1", ui_url="http://127.0.0.1:8233", namespace="my ns")
    assert (
        execution_ui_url(settings, "exec/1 #2")
        == "http://127.0.0.1:8233/namespaces/my%20ns/workflows/exec%2F1%20%232"
    )
    assert execution_ui_url(settings, "e", "run-1") == (
        "http://127.0.0.1:8233/namespaces/my%20ns/workflows/e/run-1"
    )
    assert execution_ui_url(settings_for("h:1"), "e") is None


# --------------------------------------------------------------------------- connect


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


async def test_connect_to_a_closed_port_fails_fast_with_one_line() -> None:
    address = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(TemporalUnreachableError) as info:
        await connect(settings_for(address), timeout=5.0)
    assert time.monotonic() - started < 6.0
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot reach Temporal at {address} (namespace default): ")
    assert "connection refused" in message
    assert message.endswith("Start one with 'coord server --detach' or set TEMPORAL_ADDRESS.")


async def test_connect_with_unreadable_tls_file_is_a_config_error(tmp_path: Path) -> None:
    settings = settings_for("h:1").model_copy(
        update={"tls": True, "tls_cert_path": tmp_path / "missing.pem"}
    )
    with pytest.raises(ConfigError, match=r"missing\.pem"):
        await connect(settings)
