"""The `coord` command as users and scripts run it: real processes against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.conftest import EXAMPLES, NAMESPACE, free_port
from worker import WORKFLOWS, activities

DEMO_PLAN = EXAMPLES / "hello-service" / "plan.yaml"
COORD = [sys.executable, "-m", "cli.main"]


async def coord(*args: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *COORD,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
def cli_env(server_address: str, task_queue: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": server_address,
        "TEMPORAL_NAMESPACE": NAMESPACE,
        "COORD_TASK_QUEUE": task_queue,
        "COORD_WORKSPACE_ROOT": str(tmp_path / "workspaces"),
        "COORD_UI_URL": "http://ui.example:8233",
    }


@pytest.fixture
async def worker(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[None]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities(tmp_path / "workspaces"),
    ):
        yield


async def test_run_wait_status_list_report(cli_env: dict[str, str], worker: None) -> None:
    code, out, err = await coord("run", str(DEMO_PLAN), "--wait", "--id", "demo-1", env=cli_env)
    assert code == 1, err  # Partial: setup only in this version
    assert "started execution demo-1" in out, err
    assert "Web UI: http://ui.example:8233/namespaces/default/workflows/demo-1" in out
    assert "### Final Status: Partial" in out
    assert "not available in this version" in out

    code, out, err = await coord("status", "demo-1", "--json", env=cli_env)
    progress = json.loads(out)
    assert progress["status"] == "partial"
    assert [t["id"] for t in progress["tasks"]] == ["farewell", "version", "cli", "cli-tests"]
    assert progress["workspace"]["branch"] == "coord/demo-1"

    code, out, err = await coord("report", "demo-1", "--json", env=cli_env)
    assert code == 1
    assert json.loads(out)["status"] == "Partial"

    # Visibility is eventually consistent: the list may take a moment to show the run.
    for _ in range(50):
        code, out, err = await coord("list", "--status", "partial", "--json", env=cli_env)
        if any(row["execution_id"] == "demo-1" for row in json.loads(out)):
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"demo-1 not listed as partial: {out}")

    code, out, err = await coord("run", str(DEMO_PLAN), "--id", "demo-1", env=cli_env)
    assert code == 2
    assert "an execution with id 'demo-1' already exists" in err


async def test_invalid_plan_exits_2_with_located_errors(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: broken\nrepository: .\ntasks:\n"
        "  - {id: a, title: A, specialist: shell, depends_on: [b]}\n"
        "  - {id: b, title: B, specialist: shell, depends_on: [a]}\n"
    )
    code, _out, err = await coord("run", str(plan), env=cli_env)
    assert code == 2
    assert "a -> b -> a" in err
    assert "plan.yaml:4" in err


async def test_unreachable_server_is_one_line_and_exit_4(
    cli_env: dict[str, str],
) -> None:
    env = {**cli_env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    code, _out, err = await coord("status", "anything", env=env)
    assert code == 4
    assert err.strip().count("\n") == 0
    assert "cannot reach Temporal at 127.0.0.1:" in err
    assert "Traceback" not in err


async def test_unknown_execution_is_a_clear_error(cli_env: dict[str, str]) -> None:
    code, _out, err = await coord("status", "no-such-execution", env=cli_env)
    assert code == 2
    assert "no execution with id 'no-such-execution'" in err


async def test_worker_process_runs_executions_and_stops_cleanly_on_sigterm(
    cli_env: dict[str, str],
) -> None:
    proc = await asyncio.create_subprocess_exec(
        *COORD,
        "worker",
        env=cli_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        _code, out, err = await coord(
            "run", str(DEMO_PLAN), "--wait", "--json", "--id", "by-worker", env=cli_env
        )
        assert json.loads(out)["status"] == "Partial", err
    finally:
        proc.send_signal(signal.SIGTERM)
        log = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    assert proc.returncode == 0, log
    assert "worker connected to" in log
    assert "worker stopped" in log
