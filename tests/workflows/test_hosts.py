"""Several workers: each execution's workspace steps run on the host that holds its clone, and
when that worker dies for good its executions move to another one and finish there.

Two real `coord worker` processes with separate workspace roots and one shared root (where
execution branches are published), as on two machines with a shared filesystem.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from cli.temporal_client import resolve_client_settings
from cli.worker_process import worker_polls
from coordinator.hosts import DEFAULT_HOST_GRACE_S, default_host_id, host_queue
from coordinator.report import ExecutionReport
from coordinator.settings import ConfigError
from tests.engine_support import branch_log, git, make_repo, shell_task, start, write_plan
from tests.workflows.test_durability import QUICK, Workers, alive, until, worker_env
from workflows.execution import ExecutionWorkflow

# --- the settings -----------------------------------------------------------------------------


def test_host_ids_are_stable_per_workspace_root_and_distinct_between_roots(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a" / "workspaces", tmp_path / "b" / "workspaces"
    assert default_host_id(a, "build.example.com") == default_host_id(a, "build.example.com")
    assert default_host_id(a, "build.example.com").startswith("build.example.com-")
    assert default_host_id(a, "h") != default_host_id(b, "h")
    assert default_host_id(a, "odd host/name").startswith("odd-host-name-")
    assert host_queue("coordinator", "h-1") == "coordinator@h-1"


def test_several_worker_settings_resolve_from_env_then_yaml(tmp_path: Path) -> None:
    config = tmp_path / "temporal-dev.yaml"
    config.write_text("worker:\n  workspace_root: ws\n  host_grace: 30\n  host_id: yaml-host\n")
    from_yaml = resolve_client_settings(config_path=config, environ={})
    assert (from_yaml.host_id, from_yaml.host_grace_s) == ("yaml-host", 30.0)
    # Unset, branches are published beside the workspace root.
    assert from_yaml.shared_root == tmp_path / "shared"
    assert from_yaml.publish_to_remote is True
    env = {
        "COORD_HOST_ID": "env-host",
        "COORD_HOST_GRACE": "7.5",
        "COORD_SHARED_ROOT": str(tmp_path / "nfs"),
        "COORD_PUBLISH_TO_REMOTE": "false",
    }
    from_env = resolve_client_settings(config_path=config, environ=env)
    assert (from_env.host_id, from_env.host_grace_s) == ("env-host", 7.5)
    assert (from_env.shared_root, from_env.publish_to_remote) == (tmp_path / "nfs", False)
    (tmp_path / "empty.yaml").write_text("")
    defaults = resolve_client_settings(config_path=tmp_path / "empty.yaml", environ={})
    assert defaults.host_grace_s == DEFAULT_HOST_GRACE_S
    for bad in ({"COORD_HOST_GRACE": "soon"}, {"COORD_HOST_GRACE": "0"}, {"COORD_HOST_ID": "a b"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            resolve_client_settings(config_path=config, environ=bad)


# --- two workers, one dies -----------------------------------------------------------------------

GRACE = 5  # seconds a silent host is waited for (COORD_HOST_GRACE)
# The killed worker's in-flight step is noticed at the heartbeat timeout (30 s), then the
# retry waits out the grace period on the dead host queue before the execution moves.
AFTER_A_LOSS = 150


@dataclass
class Started:
    """An activity of an execution as its histories record it."""

    type: str
    queue: str
    at: datetime
    identity: str = ""


@dataclass
class Execution:
    name: str
    handle: WorkflowHandle[ExecutionWorkflow, ExecutionReport]
    marks: Path
    first_host: str = ""
    activities: list[Started] = field(default_factory=list)


async def activities_of(client: Client, execution_id: str) -> list[Started]:
    """Every activity of the execution and its phases that a worker started, in time order
    (scheduled ones nobody started, on a dead host's queue, are left out)."""
    ids = [execution_id]
    found: list[Started] = []
    while ids:
        history = await client.get_workflow_handle(ids.pop()).fetch_history()
        scheduled: dict[int, Started] = {}
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                child = event.start_child_workflow_execution_initiated_event_attributes
                ids.append(child.workflow_id)
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attrs = event.activity_task_scheduled_event_attributes
                scheduled[event.event_id] = Started(
                    attrs.activity_type.name, attrs.task_queue.name, event.event_time.ToDatetime()
                )
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attrs_s = event.activity_task_started_event_attributes
                activity = scheduled[attrs_s.scheduled_event_id]
                activity.identity = attrs_s.identity
                found.append(activity)
    return sorted(found, key=lambda a: a.at)


def plan_for(folder: Path, marks: Path, release: Path, *, wait_in_gate: bool) -> Path:
    """Three tasks in a row; the middle one waits for `release` (in its specialist, or in its
    gate after the specialist's work is done), so the test decides when the worker dies:
    after the first task is merged, while the second one runs."""
    make_repo(folder / "repo")
    waits = (
        f"echo $$ > {marks}/two.pid.tmp && mv {marks}/two.pid.tmp {marks}/two.pid; "
        f"while [ ! -e {release} ]; do sleep 0.1; done"
    )
    two = f"echo run >> {marks}/two.runs; echo two > two.txt"
    if wait_in_gate:
        task_two = shell_task("two", two, depends_on=["one"], gates=[{"name": "w", "run": waits}])
    else:
        task_two = shell_task("two", f"{waits}; {two}", depends_on=["one"])
    # A tool the setup command installs into the prepared environment, which the last
    # task's gate needs: after a move it must be there on the new host too.
    tool = (
        'mkdir -p "$COORD_ENV_DIR/bin" && tool="$COORD_ENV_DIR/bin/hosttool" && '
        'printf \'#!/bin/sh\\necho tool-ok\\n\' > "$tool" && chmod +x "$tool" && '
        f"echo run >> {marks}/setup.runs"
    )
    return write_plan(
        folder,
        {
            "name": folder.name,
            # The commands note their runs and wait for `release` outside their worktrees,
            # where the jail would not let them: this test is about hosts, not the jail.
            "confine": "off",
            "setup": [{"name": "tool", "run": tool}],
            "tasks": [
                shell_task("one", f"echo run >> {marks}/one.runs; echo one > one.txt"),
                task_two,
                shell_task(
                    "three",
                    f"echo run >> {marks}/three.runs; sleep 0.5; echo three > three.txt",
                    depends_on=["two"],
                    gates=[{"name": "tool", "run": 'test "$(hosttool)" = tool-ok'}],
                ),
            ],
        },
    )


async def polls(env: dict[str, str], pid: int) -> bool:
    settings = resolve_client_settings(environ=env)
    return await asyncio.to_thread(worker_polls, settings, pid)


async def test_executions_run_on_their_host_and_move_when_it_dies(
    client: Client, server_address: str, task_queue: str, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    release = tmp_path / "release"
    envs, queues = {}, {}
    for name in ("a", "b"):
        root = tmp_path / f"machine-{name}"
        envs[name] = {
            **worker_env(server_address, task_queue, root),
            "COORD_SHARED_ROOT": str(shared),
            "COORD_HOST_GRACE": str(GRACE),
        }
        # Not set: derived from the hostname and the workspace root, as by default.
        workspaces = (root / "workspaces").resolve()
        queues[name] = host_queue(task_queue, default_host_id(workspaces, socket.gethostname()))
    assert queues["a"] != queues["b"]
    workers = {name: Workers(envs[name], tmp_path / f"machine-{name}") for name in envs}
    for name in envs:
        (tmp_path / f"machine-{name}").mkdir()
    executions: list[Execution] = []
    orphans: list[int] = []

    async def launch(count: int) -> None:
        for _ in range(count):
            name = f"plan-{len(executions) + 1}"
            marks = tmp_path / name / "marks"
            marks.mkdir(parents=True)
            # Odd ones lose their host in a specialist, even ones in a gate after it.
            even = len(executions) % 2 == 1
            plan = plan_for(tmp_path / name, marks, release, wait_in_gate=even)
            executions.append(Execution(name, await start(client, task_queue, plan), marks))

    async def homed(execution: Execution) -> bool:
        progress = await execution.handle.query(ExecutionWorkflow.progress)
        if progress.workspace is None or progress.workspace.host_queue is None:
            return False
        execution.first_host = progress.workspace.host_queue
        return True

    try:
        # Machine A alone takes the first two executions; then B joins and two more come,
        # for whichever worker takes them.
        a = workers["a"].start()
        await launch(2)
        for execution in executions:
            await until_async(partial(homed, execution), QUICK, "homed", workers["a"])
        assert {e.first_host for e in executions} == {queues["a"]}
        b = workers["b"].start()
        await until_async(lambda: polls(envs["b"], b.pid), QUICK, "B polls", workers["b"])
        await launch(2)
        for execution in executions[2:]:
            await until_async(partial(homed, execution), QUICK, "homed", workers["b"])
        # Every execution merged its first task and runs its second.
        for execution in executions:
            pid_file = execution.marks / "two.pid"
            await until(pid_file.exists, QUICK, f"{execution.name} runs task two", workers["a"])

        # Machine A dies for good: its worker and the specialists it runs, no cleanup.
        on_a = [e for e in executions if e.first_host == queues["a"]]
        workers["a"].kill(a)
        for execution in on_a:
            orphan = int((execution.marks / "two.pid").read_text())
            orphans.append(orphan)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(orphan, signal.SIGKILL)
        release.touch()

        try:
            reports = await asyncio.wait_for(
                asyncio.gather(*(e.handle.result() for e in executions)), AFTER_A_LOSS
            )
        except TimeoutError:
            states = [
                (await e.handle.query(ExecutionWorkflow.progress)).model_dump_json(
                    include={"status", "phase", "tasks", "workspace", "problems"}
                )
                for e in executions
            ]
            logs = workers["a"].output() + workers["b"].output()
            raise AssertionError("\n".join([*states, logs])) from None
        for execution in executions:
            execution.activities = await activities_of(client, execution.handle.id)
    finally:
        for group in workers.values():
            group.kill_all()
        for orphan in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(orphan, signal.SIGKILL)
    output = workers["a"].output() + workers["b"].output()

    identity = {"a": f"{a.pid}@", "b": f"{b.pid}@"}
    for execution, report in zip(executions, reports, strict=True):
        assert report.status == "Complete", f"{report.to_markdown()}\n{output}"
        ws = report.workspace
        assert ws is not None
        # Each task once on the branch; the one finished before the loss never ran again.
        assert branch_log(report) == ["one: Task one", "two: Task two", "three: Task three"]
        for task in ("one", "two", "three"):
            assert git(Path(ws.path), "show", f"{ws.branch}:{task}.txt") == task
        assert (execution.marks / "one.runs").read_text().split() == ["run"]
        assert (execution.marks / "three.runs").read_text().split() == ["run"]
        # The branch's home has all of it: the next worker took it from there.
        home = shared / f"{execution.handle.id}.git"
        assert ws.home == str(home)
        assert git(home, "rev-parse", ws.branch) == git(Path(ws.path), "rev-parse", ws.branch)

        workspace_steps = [s for s in execution.activities if s.type != "prepare_workspace"]
        prepares = [s for s in execution.activities if s.type == "prepare_workspace"]
        assert {s.queue for s in prepares} == {task_queue}  # any worker prepares
        # Each step ran on a host queue, by the worker that owns it.
        for step in workspace_steps:
            owner = next(name for name, queue in queues.items() if queue == step.queue)
            assert step.identity.startswith(identity[owner]), (step, identity)
        hosts = [s.queue for s in workspace_steps]
        if execution in on_a:
            # On A until it died, then on B, after one move; task two ran again there.
            split = hosts.index(queues["b"])
            assert set(hosts[:split]) == {queues["a"]}, hosts
            assert set(hosts[split:]) == {queues["b"]}, hosts
            assert (ws.host_queue, ws.moves, len(prepares)) == (queues["b"], 1, 2)
            assert (execution.marks / "two.runs").read_text().split() == ["run", "run"]
            # Its environment was made again there: the setup command ran on each host.
            assert (execution.marks / "setup.runs").read_text().split() == ["run", "run"]
            assert not alive(int((execution.marks / "two.pid").read_text()))
        else:
            assert set(hosts) == {queues["b"]}, hosts
            assert (ws.host_queue, ws.moves, len(prepares)) == (queues["b"], 0, 1)
            assert (execution.marks / "two.runs").read_text().split() == ["run"]
            assert (execution.marks / "setup.runs").read_text().split() == ["run"]
        assert {t.id: t.attempts for t in report.tasks} == {"one": 1, "two": 1, "three": 1}
    assert len(on_a) >= 2


async def until_async(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, workers: Workers
) -> None:
    """`until` for an async check."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        late = asyncio.get_running_loop().time() > deadline
        assert not late, f"{what}: not after {timeout} s\n{workers.output()}"
        await asyncio.sleep(0.2)
