"""The dev server launcher and `coord server`, against real `temporal server start-dev` processes.

The CLI runs as a subprocess (as a user runs it), mounted the way cli/main.py mounts it.
Every test stops what it started, also when it fails.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from cli import devserver, processes
from cli.config_file import load_config
from cli.devserver import DevServerError, ServerOverrides, build_command, free_port
from cli.processes import AlreadyRunningError, ProcessError
from cli.temporal_client import TemporalUnreachableError, connect, resolve_client_settings
from cli.worker_process import running_worker, start_worker, stop_worker
from coordinator.settings import DevServerConfig

ROOT = Path(__file__).resolve().parents[2]
# `coord` as the lead mounts it: `app.add_typer(server_app, name="server")`.
COORD = (
    "import typer\n"
    "from cli.server import server_app\n"
    "app = typer.Typer()\n"
    "app.add_typer(server_app, name='server')\n"
    "app.command('version')(lambda: None)\n"
    "app()\n"
)


def write_config(folder: Path, **server: object) -> Path:
    port = free_port()
    values: dict[str, object] = {
        "port": port,
        "ui_port": free_port(),
        "db_file": "data/coord.db",
        "state_dir": "state",
        "log_level": "error",
        "search_attributes": {
            "CoordinatorStatus": "Keyword",
            "CoordinatorProgress": "Int",
            "TestOnlyScore": "Double",
        },
        "dynamic_config": {"history.transferProcessorMaxPollRPS": 200},
    } | server
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "temporal-dev.yaml"
    # JSON is YAML: no need for a YAML writer.
    path.write_text(json.dumps({"server": values, "client": {"task_queue": "test-queue"}}))
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Iterator[Path]:
    """A temporal-dev.yaml with free ports in tmp_path; whatever server it started is stopped."""
    path = write_config(tmp_path / "project")
    yield path
    devserver.stop(load_config(path), grace=5.0)
    gc.collect()  # drop SDK clients while the interpreter is fully alive


def coord(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "COORD_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", COORD, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


async def client_for(config_path: Path) -> Client:
    return await connect(resolve_client_settings(config_path=config_path, environ={}))


async def describe_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def listed_ids(client: Client) -> list[str]:
    return [wf.id async for wf in client.list_workflows()]


# --------------------------------------------------------------------------- command line


def test_binaries_come_from_the_pip_packages() -> None:
    for binary in (devserver.temporal_binary(), devserver.test_server_binary()):
        assert binary.is_file() and os.access(binary, os.X_OK)
    assert devserver.temporal_binary().parent == Path(sys.executable).parent


def test_build_command(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, namespace="coord", headless=False))
    argv = build_command(config, binary=Path("temporal"))
    server = config.server
    assert argv[:3] == ["temporal", "server", "start-dev"]
    joined = " ".join(argv)
    assert f"--ip 127.0.0.1 --port {server.port}" in joined
    assert f"--ui-port {server.ui_port} --ui-disable-news-fetch" in joined
    assert f"--db-filename {tmp_path / 'data' / 'coord.db'}" in joined
    assert "--namespace coord" in joined
    assert "--log-level error" in joined
    assert "--search-attribute TestOnlyScore=Double" in joined
    assert "--dynamic-config-value history.transferProcessorMaxPollRPS=200" in joined

    overridden = build_command(
        config,
        ServerOverrides(port=7999, ephemeral=True, headless=True, namespace="default"),
        binary=Path("temporal"),
    )
    assert "--db-filename" not in overridden
    assert "--headless" in overridden
    assert "--ui-port" not in overridden
    assert "--namespace" not in overridden  # "default" always exists
    assert overridden[overridden.index("--port") + 1] == "7999"
    with pytest.raises(DevServerError, match="not both"):
        build_command(config, ServerOverrides(ephemeral=True, db_file=Path("x.db")))


def test_port_moved_by_flag_moves_the_ui_port_too(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    moved = devserver.apply_overrides(config, ServerOverrides(port=7300, db_file=Path("rel.db")))
    assert moved.server.effective_ui_port == 8300
    assert moved.server.db_file == Path.cwd() / "rel.db"  # a CLI path: relative to cwd


# --------------------------------------------------------------------------- the real server


async def test_detached_server_keeps_executions_across_restarts(config_path: Path) -> None:
    cwd = config_path.parent
    config = load_config(config_path)
    address = config.server.address

    out = ok(coord("server", "--detach", "--config", str(config_path), cwd=cwd))
    assert f"Temporal dev server ready: grpc {address}  ui {config.server.ui_url}" in out
    assert f"db {config.server.db_file}" in out
    assert config.server.db_file is not None and config.server.db_file.is_file()
    assert (config.server.state_dir / "server.pid").is_file()

    # Idempotent: `make demo` runs it every time.
    again = ok(coord("server", "--detach", "--config", str(config_path), cwd=cwd))
    assert "already running" in again
    other_port = ok(
        coord("server", "-d", "--port", str(free_port()), "--config", "temporal-dev.yaml", cwd=cwd)
    )
    assert "already running" in other_port and "note:" in other_port

    client = await client_for(config_path)
    await client.start_workflow("SomeWorkflowType", id="persist-me", task_queue="nobody-polls")
    attributes = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=config.server.namespace)
    )
    assert (
        attributes.custom_attributes["CoordinatorStatus"]
        == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    )
    assert (
        attributes.custom_attributes["TestOnlyScore"] == IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE
    )
    status = ok(coord("server", "status", "--config", str(config_path), cwd=cwd))
    assert "answering" in status and address in status

    # `--config` may also come before the subcommand.
    assert "stopped" in ok(coord("server", "--config", str(config_path), "stop", cwd=cwd))
    assert "No Temporal dev server" in ok(
        coord("server", "stop", "--config", str(config_path), cwd=cwd)
    )
    assert coord("server", "status", "--config", str(config_path), cwd=cwd).returncode == 1
    assert not (config.server.state_dir / "server.pid").exists()
    with pytest.raises(TemporalUnreachableError, match=address):
        await client_for(config_path)

    ok(coord("server", "--detach", "--config", str(config_path), cwd=cwd))
    client = await client_for(config_path)
    assert await describe_status(client, "persist-me") == WorkflowExecutionStatus.RUNNING
    assert "persist-me" in await listed_ids(client)


async def test_ephemeral_server_loses_executions(config_path: Path) -> None:
    cwd = config_path.parent
    start = ("server", "--detach", "--ephemeral", "--headless", "--config", str(config_path))
    out = ok(coord(*start, cwd=cwd))
    assert "db in memory" in out and "ui off" in out
    assert not (cwd / "data").exists()

    client = await client_for(config_path)
    await client.start_workflow("SomeWorkflowType", id="forget-me", task_queue="nobody-polls")
    assert await describe_status(client, "forget-me") == WorkflowExecutionStatus.RUNNING
    ok(coord("server", "stop", "--config", str(config_path), cwd=cwd))

    ok(coord(*start, cwd=cwd))
    client = await client_for(config_path)
    assert await describe_status(client, "forget-me") is None
    assert await listed_ids(client) == []


def test_port_taken_by_something_else_fails_clearly(config_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = coord(
            "server",
            "--detach",
            "--headless",
            "--port",
            str(port),
            "--config",
            str(config_path),
            cwd=config_path.parent,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use by something else" in result.stderr
    assert devserver.running(load_config(config_path)) is None


def test_foreground_server_stops_cleanly_on_ctrl_c(config_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "COORD_"))}
    env["PYTHONPATH"] = str(ROOT)
    config = load_config(config_path)
    # Its own process group stands in for the terminal's foreground job.
    proc = subprocess.Popen(
        [sys.executable, "-c", COORD, "server", "--ephemeral", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while "ready" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "coord server exited before it was ready"
        assert f"grpc {config.server.address}" in line
        running = devserver.running(config)
        assert running is not None and not running.detached
        assert "already running" in ok(
            coord("server", "--detach", "--config", str(config_path), cwd=config_path.parent)
        )
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        assert proc.wait(timeout=30) == 0
        assert devserver.running(config) is None
        assert not processes._alive(running.pid, None)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


WORKER_SCRIPT = """
import asyncio, sys
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

@activity.defn
async def noop() -> None: ...

async def main() -> None:
    client = await Client.connect(sys.argv[1])
    async with Worker(client, task_queue=sys.argv[2], activities=[noop]):
        await asyncio.Event().wait()

asyncio.run(main())
"""


def test_detached_worker_helper(config_path: Path, tmp_path: Path) -> None:
    ok(
        coord(
            "server", "-d", "--ephemeral", "--headless", "--config", str(config_path), cwd=tmp_path
        )
    )
    settings = resolve_client_settings(config_path=config_path, environ={})
    state = tmp_path / "worker-state"
    argv = [sys.executable, "-c", WORKER_SCRIPT, settings.address, settings.task_queue]
    record = start_worker(argv, settings, state)
    try:
        assert running_worker(state) == record
        with pytest.raises(AlreadyRunningError):
            start_worker(argv, settings, state)
    finally:
        assert stop_worker(state, grace=5.0)
    assert running_worker(state) is None
    assert not stop_worker(state)


# --------------------------------------------------------------------------- process machinery


def test_detached_process_lifecycle(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(60)"]
    record = processes.start_detached("sleeper", argv, tmp_path, lambda pid: True, info={"k": 1})
    try:
        assert processes.read_pid("sleeper", tmp_path) == record
        assert record.info == {"k": 1} and record.own_session
        with pytest.raises(AlreadyRunningError):
            processes.start_detached("sleeper", argv, tmp_path)
    finally:
        assert processes.stop_detached("sleeper", tmp_path, grace=5.0)
    assert processes.read_pid("sleeper", tmp_path) is None
    assert not processes.stop_detached("sleeper", tmp_path)
    assert "hi" in processes.log_file("sleeper", tmp_path).read_text()


def test_a_process_that_dies_while_starting_reports_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('boom: bad flag'); sys.exit(3)"]
    with pytest.raises(ProcessError, match=r"exited with code 3(.|\n)*boom: bad flag"):
        processes.start_detached("dies", argv, tmp_path, lambda pid: False)
    assert not processes.pid_file("dies", tmp_path).exists()


def test_a_process_never_ready_is_stopped(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(ProcessError, match="not ready after"):
        processes.start_detached("slow", argv, tmp_path, lambda pid: False, timeout=0.5)
    assert processes.read_pid("slow", tmp_path) is None


def test_stale_or_recycled_pid_files_are_ignored(tmp_path: Path) -> None:
    pid_file = processes.pid_file("ghost", tmp_path)
    record = processes.ProcessRecord(
        name="ghost",
        pid=os.getpid(),
        own_session=False,
        argv=["x"],
        started_at=0.0,
        start_ticks=1,  # our pid, but not our start time: a recycled pid
    )
    pid_file.write_text(record.model_dump_json())
    assert processes.read_pid("ghost", tmp_path) is None
    assert not pid_file.exists()
    assert not processes.stop_detached("ghost", tmp_path)  # and nobody got a signal


def test_dev_server_config_defaults_need_no_file() -> None:
    assert DevServerConfig.defaults(Path.cwd()).server.address == "127.0.0.1:7233"


async def test_server_answers_works_inside_an_event_loop() -> None:
    # Readiness probes are sync (called from the CLI); a caller inside a loop must not break.
    await asyncio.sleep(0)
    assert devserver.server_answers(f"127.0.0.1:{free_port()}", "default", timeout=1.0) is False


def test_free_ports_are_below_the_ephemeral_range_and_never_repeat() -> None:
    """A port the kernel picked for an outgoing connection in the meantime cannot be one of
    these: the race that once failed a dev server's start."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50 and all(p < low for p in ports)
    argv = devserver.side_ports("127.0.0.1")
    assert argv[0::2] == ["--http-port", "--metrics-port"] and all(int(p) < low for p in argv[1::2])
