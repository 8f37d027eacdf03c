"""Durability: executions survive a killed worker, and a stop and restart of everything.

Workers run as real `coord worker` processes (`python -m cli.main worker`), configured the way
an operator configures them: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, COORD_TASK_QUEUE,
COORD_WORKSPACE_ROOT, COORD_ARTIFACTS_ROOT. Every process a test starts is killed in its
`finally`, also when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from temporalio.client import Client

from cli import devserver
from cli.config_file import load_config
from cli.temporal_client import connect, resolve_client_settings
from coordinator import visibility
from coordinator.branches import task_worktree_path
from coordinator.escalation import Action, Escalation, Resolution
from coordinator.settings import DevServerConfig
from tests.cli_support import client_env
from tests.conftest import NAMESPACE, ROOT, free_port
from tests.engine_support import (
    branch_log,
    git,
    make_repo,
    pending_escalation,
    shell_task,
    start,
    write_plan,
)
from tests.jail_support import require_bwrap, running, sleeper, until_gone, until_running
from workflows.execution import ExecutionWorkflow

# Seconds. Temporal notices a dead worker's activity after the heartbeat timeout
# (workflows/steps.py HEARTBEAT, 30 s); everything else here takes a few seconds.
AFTER_A_CRASH = 120
QUICK = 60


class Workers:
    """`coord worker` processes, each in its own session (a process group of its own)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.procs) + 1}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """What a machine crash does to it: SIGKILL, no chance to clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        """What `coord worker stop` and Ctrl-C do: SIGTERM, a graceful shutdown."""
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=QUICK)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)

    def output(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.logs.glob("worker-*.log"))
        )


def worker_env(address: str, task_queue: str, root: Path) -> dict[str, str]:
    return client_env(address, NAMESPACE, task_queue, root)


@contextlib.contextmanager
def worker_processes(env: dict[str, str], logs: Path) -> Iterator[Workers]:
    workers = Workers(env, logs)
    try:
        yield workers
    finally:
        workers.kill_all()


async def until(check: Callable[[], bool], timeout: float, what: str, workers: Workers) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s\n{workers.output()}"
        await asyncio.sleep(0.1)


def alive(pid: int) -> bool:
    """Running, that is: neither gone nor a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --------------------------------------------------------------------------- (1) a crash


async def test_worker_killed_while_a_specialist_runs_the_execution_finishes_once(
    client: Client, server_address: str, task_queue: str, tmp_path: Path
) -> None:
    """Without the jail (`confine: off`) a specialist outlives its killed worker; the retry
    stops it before it starts, so the two never work side by side."""
    make_repo(tmp_path / "repo")
    marks = tmp_path / "marks"
    marks.mkdir()
    runs, lock = marks / "slow.runs", marks / "slow.lock"
    first = sleeper()
    # A line per run goes outside the worktree, so it is not part of the task's commit. Each
    # run holds a lock for as long as any of its processes lives: a run that cannot take it
    # works beside another. The first run sleeps until it is stopped.
    slow = (
        f"exec 9>> {lock}; flock -n 9 || echo overlap >> {runs}; echo run >> {runs}; "
        f'[ "$(grep -c run {runs})" -gt 1 ] || {first}; echo slow > slow.txt'
    )
    plan = write_plan(
        tmp_path,
        {
            "confine": "off",
            "tasks": [
                shell_task("before", "echo before > before.txt"),
                shell_task("slow", slow, depends_on=["before"]),
                shell_task("after", "echo after > after.txt", depends_on=["slow"]),
            ],
        },
    )
    env = worker_env(server_address, task_queue, tmp_path)
    with worker_processes(env, tmp_path) as workers:
        try:
            crashed = workers.start()
            handle = await start(client, task_queue, plan)
            specialist = await until_running(first, QUICK)  # its shell and its sleep
            assert crashed.pid not in {os.getpgid(pid) for pid in specialist}  # its own group

            # The machine dies: the worker, with no cleanup. Its specialist lives on.
            workers.kill(crashed)
            worktree = task_worktree_path(tmp_path / "workspaces", handle.id, "slow")
            assert worktree.is_dir() and not (worktree / "slow.txt").exists()  # mid-flight
            assert running(first)

            workers.start()
            report = await asyncio.wait_for(handle.result(), AFTER_A_CRASH)
        finally:
            for pid in running(first):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    assert report.status == "Complete", f"{report.to_markdown()}\n{workers.output()}"
    # Each task exactly once on the branch, in order, nothing lost.
    assert branch_log(report) == ["before: Task before", "slow: Task slow", "after: Task after"]
    ws = report.workspace
    assert ws is not None
    for name in ("before", "slow", "after"):
        assert git(Path(ws.path), "show", f"{ws.branch}:{name}.txt") == name
    # The specialist was cut off once and run again by the new worker, after the first run
    # was stopped: an activity retry, not a failed fix-loop attempt.
    assert runs.read_text().split() == ["run", "run"]
    assert {t.id: (t.status, t.attempts) for t in report.tasks} == {
        "before": ("passed", 1),
        "slow": ("passed", 1),
        "after": ("passed", 1),
    }
    assert not running(first)
    assert all(proc.poll() is not None for proc in workers.procs)


async def test_a_killed_workers_jailed_specialist_is_gone_before_its_retry_starts(
    client: Client, server_address: str, task_queue: str, tmp_path: Path
) -> None:
    """In the jail a specialist dies with its worker (`--die-with-parent`): nothing of it
    runs by the time another worker could retry the task."""
    require_bwrap()
    make_repo(tmp_path / "repo")
    first = sleeper()
    # The runs are noted in the environment folder (a setup command makes it), the one place
    # outside its worktree a jailed specialist may write; the lock tells overlapping runs.
    slow = (
        'R="$COORD_ENV_DIR/runs"; exec 9>> "$COORD_ENV_DIR/lock"; '
        'flock -n 9 || echo overlap >> "$R"; echo run >> "$R"; '
        f'[ "$(grep -c run "$R")" -gt 1 ] || {first}; echo slow > slow.txt'
    )
    plan = write_plan(
        tmp_path,
        {
            "confine": "required",
            "setup": [{"name": "env", "run": "true"}],
            "tasks": [shell_task("slow", slow)],
        },
    )
    env = worker_env(server_address, task_queue, tmp_path)
    with worker_processes(env, tmp_path) as workers:
        try:
            crashed = workers.start()
            handle = await start(client, task_queue, plan)
            await until_running(first, QUICK)
            workers.kill(crashed)  # the worker alone: the jail is not in its process group
            await until_gone(first, QUICK)

            workers.start()
            report = await asyncio.wait_for(handle.result(), AFTER_A_CRASH)
        finally:
            for pid in running(first):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    assert report.status == "Complete", f"{report.to_markdown()}\n{workers.output()}"
    runs = tmp_path / "workspaces" / handle.id / "env" / "runs"
    assert runs.read_text().split() == ["run", "run"]  # and no overlap
    assert [(t.id, t.status, t.attempts) for t in report.tasks] == [("slow", "passed", 1)]


# --------------------------------------------------------------------------- (2) a restart


def write_server_config(folder: Path) -> DevServerConfig:
    """A temporal-dev.yaml on free ports with its db file in `folder`; the search attributes
    and dynamic config of the project's own temporal-dev.yaml."""
    project = load_config(ROOT / "temporal-dev.yaml").server
    folder.mkdir(parents=True)
    path = folder / "temporal-dev.yaml"
    server = {
        "port": free_port(),
        "headless": True,
        "db_file": "data/coord.db",
        "state_dir": "state",
        "log_level": "error",
        "search_attributes": project.search_attributes,
        "dynamic_config": project.dynamic_config,
    }
    path.write_text(json.dumps({"server": server}))  # JSON is YAML
    return load_config(path)


async def client_for(config: DevServerConfig) -> Client:
    environ = {"TEMPORAL_ADDRESS": config.server.address, "TEMPORAL_NAMESPACE": NAMESPACE}
    return await connect(resolve_client_settings(environ=environ))


async def test_an_escalation_waits_through_a_restart_of_server_and_worker(
    tmp_path: Path,
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "tasks": [
                shell_task(
                    "greet",
                    'printf "%s" "${COORD_GUIDANCE:-Hello}" > greeting.txt',
                    gates=[{"name": "french", "run": 'test "$(cat greeting.txt)" = Bonjour'}],
                ),
                shell_task("after", "echo after > after.txt", depends_on=["greet"]),
            ]
        },
    )
    config = write_server_config(tmp_path / "server")
    assert config.server.db_file is not None
    env = worker_env(config.server.address, f"tq-{uuid.uuid4()}", tmp_path)
    with worker_processes(env, tmp_path) as workers:
        try:
            await asyncio.to_thread(devserver.start, config, detach=True)
            client = await client_for(config)
            workers.start()
            handle = await start(client, env["COORD_TASK_QUEUE"], plan)
            escalation = await pending_escalation(handle, timeout=QUICK)
            assert (escalation.task_id, escalation.attempts) == ("greet", 3)
            execution_id = handle.id

            # Everything stops: the worker as an operator stops it, then the server.
            assert workers.stop(workers.procs[0]) == 0, workers.output()
            assert await asyncio.to_thread(devserver.stop, config, grace=10.0)
            assert config.server.db_file.is_file()
            del client, handle
            gc.collect()

            # ... and comes back, from the same db file and the same roots.
            await asyncio.to_thread(devserver.start, config, detach=True)
            client = await client_for(config)
            handle = client.get_workflow_handle_for(ExecutionWorkflow.run, execution_id)
            workers.start()
            progress = await handle.query(ExecutionWorkflow.progress)
            assert progress.status.value == "escalated"
            assert [e.id for e in progress.pending_escalations] == [escalation.id]
            # `coord list --status escalated` still shows it: visibility came back too.
            query = f"WorkflowId = '{execution_id}' AND {visibility.STATUS} = 'escalated'"
            assert [wf.id async for wf in client.list_workflows(query)] == [execution_id]

            answered = await handle.execute_update(
                "resolve_escalation",
                Resolution(escalation_id=escalation.id, action=Action.RETRY, guidance="Bonjour"),
                result_type=Escalation,
            )
            assert answered.state == "answered"
            report = await asyncio.wait_for(handle.result(), QUICK)
        finally:
            workers.kill_all()
            await asyncio.to_thread(devserver.stop, config, grace=5.0)
            gc.collect()  # drop SDK clients while the interpreter is fully alive

    assert report.status == "Complete", f"{report.to_markdown()}\n{workers.output()}"
    [answered_then] = report.escalations
    assert answered_then.id == escalation.id
    assert answered_then.state == "answered"
    assert answered_then.answer is not None
    assert (answered_then.answer.action, answered_then.answer.guidance) == (
        Action.RETRY,
        "Bonjour",
    )
    greet = next(t for t in report.tasks if t.id == "greet")
    assert (greet.status, greet.attempts) == ("passed", 4)
    assert branch_log(report) == ["greet: Task greet", "after: Task after"]
    assert "Bonjour" in report.to_markdown()
