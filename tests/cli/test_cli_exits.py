"""Exit codes per path, as the README's table says them (0 Complete, 1 not complete or the
command could not do it, 2 invalid, 3 waiting on a human, 4 Temporal unreachable or lost),
and what scripts and terminals see on the way: whole ids, no colour codes in a pipe, one
line when the server goes away.

Real `coord` processes against a real server; the lost-server paths against a dev server of
their own, stopped under them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from temporalio.client import Client, WorkflowExecutionStatus

from cli import devserver
from cli.config_file import load_config
from cli.exit_codes import ExitCode
from cli.render import progress_view
from coordinator.report import PHASES, PhaseState, Progress, TaskState
from coordinator.settings import DevServerConfig
from tests.cli_support import COORD, client_env, coord
from tests.conftest import free_port
from tests.engine_support import make_repo, shell_task, write_plan


def plan_file(folder: Path, **plan: object) -> Path:
    make_repo(folder / "repo", {"README.md": "# demo\n"})
    task = shell_task("only", "echo only > only.txt", depends_on=[])
    return write_plan(folder, {"tasks": [task], **plan})


async def test_report_of_a_waiting_execution_exits_3_with_the_question(
    cli_env: dict[str, str], worker: None, tmp_path: Path
) -> None:
    plan = plan_file(tmp_path, approval={"before_start": True})
    eid = f"exits-{uuid.uuid4().hex[:8]}"
    code, out, err = await coord("run", str(plan), "--wait", "--id", eid, env=cli_env)
    assert code == ExitCode.WAITING_ON_HUMAN, err

    code, out, err = await coord("report", eid, env=cli_env)
    assert code == ExitCode.WAITING_ON_HUMAN, err
    assert f"{eid} is waiting on a human: approval before_start" in out
    assert f"coord approve {eid}" in out
    code, out, err = await coord("report", eid, "--json", env=cli_env)
    assert code == ExitCode.WAITING_ON_HUMAN, err
    assert json.loads(out)["status"] == "awaiting_approval"

    # Rich tables in a pipe: plain text, no colour codes; the running time of nothing yet.
    code, out, err = await coord("status", eid, env=cli_env)
    assert code == ExitCode.COMPLETE, err
    assert "\x1b" not in out and "0 of 1 tasks passed" in out

    code, out, err = await coord("reject", eid, "--reason", "not now", "--by", "lead", env=cli_env)
    assert code == ExitCode.COMPLETE, err
    code, out, err = await coord("watch", eid, env=cli_env)
    assert code == ExitCode.NOT_COMPLETE, err
    assert "### Final Status: Partial" in out
    assert "- before_start: rejected by lead (not now)" in out
    assert "| implementation | not_run | not run (rejected at before_start by lead) |" in out


async def test_report_of_a_running_execution_exits_1(
    client: Client, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # Nobody polls this queue: the execution stays running, waiting on no one.
    eid = f"exits-{uuid.uuid4().hex[:8]}"
    await client.start_workflow("ExecutionWorkflow", id=eid, task_queue=f"none-{eid}")
    code, _out, err = await coord("report", eid, env=cli_env)
    assert code == ExitCode.NOT_COMPLETE
    assert f"{eid} is still running" in err
    await client.get_workflow_handle(eid).terminate()


async def test_retry_with_empty_guidance_is_refused(cli_env: dict[str, str]) -> None:
    for guidance in ("", "   "):
        code, _out, err = await coord(
            "resolve", "any-execution", "--retry", "--guidance", guidance, env=cli_env
        )
        assert code == ExitCode.INVALID
        assert err.startswith("error: --guidance is empty: say what the specialist should do")


async def test_list_never_cuts_an_id_at_80_columns(client: Client, cli_env: dict[str, str]) -> None:
    eid = f"a-long-execution-id-for-the-list-at-80-columns-{uuid.uuid4().hex[:12]}"
    await client.start_workflow("ExecutionWorkflow", id=eid, task_queue=f"none-{eid[-12:]}")
    try:
        for _ in range(50):  # visibility is eventually consistent
            code, out, err = await coord("list", env={**cli_env, "COLUMNS": "80"})
            if eid in out:
                break
            await asyncio.sleep(0.2)
        assert code == ExitCode.COMPLETE, err
        (line,) = [ln for ln in out.splitlines() if eid in ln]
        assert line.split()[0] == eid
        assert out.splitlines()[0].split() == [
            "execution",
            "plan",
            "status",
            "phase",
            "passed",
            "started",
        ]
    finally:
        await client.get_workflow_handle(eid).terminate()


# --- losing the server: one line, exit 4 -----------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[DevServerConfig]:
    """A dev server of this test's own (in memory), to stop under a running command."""
    folder = tmp_path / "server"
    folder.mkdir()
    path = folder / "temporal-dev.yaml"
    server = {
        "port": free_port(),
        "ui_port": free_port(),
        "headless": True,
        "db_file": None,
        "state_dir": "state",
        "log_level": "error",
    }
    path.write_text(json.dumps({"server": server}))
    config = load_config(path)
    devserver.start(config, detach=True)
    try:
        yield config
    finally:
        devserver.stop(config, grace=5.0)


async def test_losing_the_server_during_watch_and_run_wait_is_one_line_and_exit_4(
    own_server: DevServerConfig, tmp_path: Path
) -> None:
    address = own_server.server.address
    env = client_env(address, own_server.server.namespace, "nobody-polls", tmp_path)
    plan = plan_file(tmp_path)
    eid = f"lost-{uuid.uuid4().hex[:8]}"
    # No worker: the executions stay running, and both commands keep following them.
    waiting_run = await asyncio.create_subprocess_exec(
        *COORD,
        "run",
        str(plan),
        "--wait",
        "--id",
        eid,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    client = await Client.connect(address, namespace=own_server.server.namespace)
    for _ in range(100):
        try:
            described = await client.get_workflow_handle(eid).describe()
        except Exception:
            await asyncio.sleep(0.1)
            continue
        assert described.status == WorkflowExecutionStatus.RUNNING
        break
    watching = await asyncio.create_subprocess_exec(
        *COORD,
        "watch",
        eid,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(3)  # watch has connected and polls
    devserver.stop(own_server, grace=5.0)

    for proc, what in ((waiting_run, "run --wait"), (watching, "watch")):
        _out, err_bytes = await asyncio.wait_for(proc.communicate(), 60)
        err = err_bytes.decode()
        assert proc.returncode == ExitCode.UNREACHABLE, (what, err)
        # `run` warned at the start that no worker polls; then one line says what happened.
        lines = [ln for ln in err.splitlines() if ln.strip() and "no worker polls" not in ln]
        assert len(lines) == 1, (what, err)
        assert lines[0].startswith("error: lost the Temporal server"), (what, err)
        assert "Traceback" not in err and "WARN" not in err and "\x1b" not in err, (what, err)


async def test_the_worker_log_has_no_colour_codes_when_the_server_goes_away(
    own_server: DevServerConfig, tmp_path: Path
) -> None:
    """What `coord worker --detach` writes to `.coord/worker.log`: the SDK's own warnings
    (retries against a vanished server) as ordinary log lines, no terminal colour codes."""
    env = client_env(own_server.server.address, own_server.server.namespace, "log-q", tmp_path)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = await asyncio.create_subprocess_exec(
            *COORD, "worker", env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
        try:
            for _ in range(300):
                if "worker connected" in log.read_text():
                    break
                await asyncio.sleep(0.1)
            devserver.stop(own_server, grace=5.0)
            for _ in range(300):
                if "retried" in log.read_text():
                    break
                await asyncio.sleep(0.1)
        finally:
            worker.terminate()
            await asyncio.wait_for(worker.wait(), 60)
    text = log.read_text()
    assert "worker connected" in text
    assert "WARNING [sdk_core" in text and "retried" in text, text[-2000:]
    assert "\x1b" not in text


def test_status_shows_each_running_tasks_time_so_far() -> None:
    now = datetime.now(UTC)
    progress = Progress(
        execution_id="timed",
        plan_name="timed",
        phases=[PhaseState(name=name) for name in PHASES],
        tasks=[
            TaskState(
                id="slow", title="slow", status="running", started_at=now - timedelta(minutes=2)
            ),
            TaskState(
                id="done",
                title="done",
                status="passed",
                started_at=now - timedelta(seconds=75),
                finished_at=now - timedelta(seconds=30),
            ),
            TaskState(id="next", title="next", status="pending"),
        ],
    )
    console = Console(width=160, record=True, color_system=None)
    console.print(progress_view(progress))
    text = console.export_text()
    assert "1 of 3 tasks passed" in text
    assert "2m00s so far" in text or "2m01s so far" in text
    assert "45s" in text
