"""What the benchmarks run on: their own dev server, real worker processes, a scratch git
repository, executions started with `coord run`, and what the server knows about them.

Only the product's public surfaces are used (temporal-dev.yaml, `python -m worker` configured by
its environment, `coord run`, workflow names, updates and queries by name, visibility), so the
harness keeps measuring the product while its internals change.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from benchmarks.cpu import CpuUse
from cli import devserver
from cli.config_file import load_config

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "default"
TASK_QUEUE = "coord-bench"
READY_TIMEOUT = 60.0


class BenchError(RuntimeError):
    """A benchmark could not run; the message says what and where to look."""


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM its process group, SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    _kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGKILL)
        proc.wait(timeout=10)


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# --------------------------------------------------------------------------- server


class DevServer:
    """`temporal server start-dev` as `coord server` configures it (temporal-dev.yaml: search
    attributes, dynamic config), but on a free port, headless, with an in-memory database."""

    def __init__(self, logs: Path) -> None:
        self.port = devserver.free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = logs / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> Client:
        config = load_config(ROOT / "temporal-dev.yaml")
        overrides = devserver.ServerOverrides(
            port=self.port, headless=True, ephemeral=True, log_level="error"
        )
        argv = devserver.build_command(config, overrides) + devserver.side_ports("127.0.0.1")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"the dev server exited at start:\n{_tail(self.log)}")
            with contextlib.suppress(RuntimeError):
                return await Client.connect(
                    self.address,
                    namespace=NAMESPACE,
                    data_converter=pydantic_data_converter,
                )
            if time.monotonic() > deadline:
                raise BenchError(f"the dev server did not answer:\n{_tail(self.log)}")
            await asyncio.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, grace=10)


# --------------------------------------------------------------------------- workers


def process_env(address: str, root: Path) -> dict[str, str]:
    """The environment of `coord` and worker subprocesses: this server, this scratch space, and
    nothing of the developer's own Temporal or coord settings."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "COORD_"))}
    return {
        **inherited,
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": NAMESPACE,
        "COORD_TASK_QUEUE": TASK_QUEUE,
        "COORD_WORKSPACE_ROOT": str(root / "workspaces"),
        "COORD_ARTIFACTS_ROOT": str(root / "artifacts"),
    }


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def peak_rss_bytes(self) -> int:
        """VmHWM: the resident set's high-water mark since the process started."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        if match is None:
            raise BenchError(f"no VmHWM in /proc/{self.pid}/status")
        return int(match.group(1)) * 1024


class Workers:
    """Real worker processes (`python -m worker`), each in a session of its own."""

    def __init__(self, client: Client, env: dict[str, str], logs: Path) -> None:
        self.client = client
        self.env = env
        self.logs = logs
        self.started: list[WorkerProcess] = []

    async def start(self) -> WorkerProcess:
        log = self.logs / f"worker-{len(self.started) + 1}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(proc, log)
        self.started.append(worker)
        deadline = time.monotonic() + READY_TIMEOUT
        while not await self._polls(worker.pid):
            if proc.poll() is not None:
                raise BenchError(f"the worker exited at start:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise BenchError(f"the worker never polled {TASK_QUEUE}:\n{_tail(log)}")
            await asyncio.sleep(0.2)
        return worker

    async def _polls(self, pid: int) -> bool:
        """The SDK's default worker identity is `<pid>@<host>`."""
        response = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=NAMESPACE,
                task_queue=TaskQueue(name=TASK_QUEUE, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return any(p.identity.startswith(f"{pid}@") for p in response.pollers)

    def kill(self, worker: WorkerProcess) -> None:
        """What a machine crash does: SIGKILL, no chance to clean up."""
        _kill_group(worker.proc, signal.SIGKILL)
        worker.proc.wait(timeout=10)

    def stop(self, worker: WorkerProcess) -> None:
        """What `coord worker stop` does: SIGTERM, in-flight activities finish."""
        _stop(worker.proc, grace=40)

    def stop_all(self) -> None:
        for worker in self.started:
            _stop(worker.proc, grace=40)

    def output(self) -> str:
        return "\n".join(f"--- {w.log.name}\n{_tail(w.log)}" for w in self.started)


# --------------------------------------------------------------------------- executions


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "README.md").write_text("# benchmark\n")
    return commit_all(path)


def commit_all(path: Path) -> Path:
    """The folder made a repository whose one commit holds all its files."""
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "x"],
    ):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
    return path


def shell_plan(
    name: str,
    layers: list[list[str]],
    prompt: str | dict[str, str],
    repository: Path,
    *,
    max_parallel: int = 8,
    gate: str | None = None,
) -> dict[str, Any]:
    """A plan of `shell` tasks, no review; with `gate`, that command is each task's gate.
    Each layer depends on the whole previous one (the plan's layer rule). `prompt` is one
    command for all, or one per task id."""
    return {
        "name": name,
        "repository": str(repository),
        "max_parallel": max_parallel,
        "reviewer": None,
        "tasks": [
            {
                "id": task,
                "title": f"Task {task}",
                "specialist": "shell",
                "prompt": prompt if isinstance(prompt, str) else prompt[task],
                "layer": f"L{n}",
                **({"gates": [{"name": "check", "run": gate}]} if gate else {}),
            }
            for n, layer in enumerate(layers)
            for task in layer
        ],
    }


@dataclass
class WorkflowRun:
    workflow_id: str
    run_id: str
    events: int
    size_bytes: int
    start: datetime
    close: datetime | None


@dataclass
class ExecutionRun:
    execution_id: str
    tasks: int
    status: str  # the report's status, or "timed out"/"failed: ..."
    workflows: list[WorkflowRun] = field(default_factory=list)
    tasks_done: int = 0
    cpu: CpuUse | None = None  # what the run cost the worker, its commands and the server

    @property
    def ok(self) -> bool:
        return self.status == "Complete"

    def span(self, prefix: str | None = None) -> float:
        """Seconds from the first start to the last close of the execution's workflows (or of
        those whose id starts with `prefix`: e.g. the implementation phase and its children)."""
        runs = [
            w
            for w in self.workflows
            if prefix is None or w.workflow_id == prefix or w.workflow_id.startswith(prefix + "/")
        ]
        if not runs or any(w.close is None for w in runs):
            return float("nan")
        start = min(w.start for w in runs)
        close = max(w.close for w in runs if w.close is not None)
        return (close - start).total_seconds()

    @property
    def makespan(self) -> float:
        return self.span()

    @property
    def implementation_span(self) -> float:
        return self.span(f"{self.execution_id}/implementation")


class Coord:
    """Starts executions the way users do (`coord run`) and reads them back from the server."""

    def __init__(self, client: Client, env: dict[str, str], plans: Path) -> None:
        self.client = client
        self.env = env
        self.plans = plans

    async def start(self, plan: dict[str, Any], execution_id: str) -> WorkflowHandle[Any, Any]:
        path = self.plans / f"{execution_id}.yaml"
        path.write_text(yaml.safe_dump(plan, sort_keys=False))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            "run",
            str(path),
            "--id",
            execution_id,
            "--json",
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise BenchError(
                f"coord run {path} exited {proc.returncode}: {err.decode()[-2000:]}{out.decode()}"
            )
        return self.client.get_workflow_handle(execution_id)

    async def run(self, plan: dict[str, Any], execution_id: str, *, timeout: float) -> ExecutionRun:
        """Start, wait for the end (or the timeout: then terminate it), collect its workflows."""
        tasks = len(plan["tasks"])
        handle = await self.start(plan, execution_id)
        try:
            report = await asyncio.wait_for(handle.result(), timeout)
        except TimeoutError:
            done = await self.tasks_done(handle)
            await self.terminate(execution_id)
            return ExecutionRun(execution_id, tasks, f"timed out after {timeout:.0f} s", [], done)
        status = str(report.get("status")) if isinstance(report, dict) else repr(report)
        run = ExecutionRun(execution_id, tasks, status)
        run.workflows = await self.workflows(execution_id)
        run.tasks_done = sum(1 for t in report.get("tasks", []) if t.get("status") == "passed")
        return run

    async def tasks_done(self, handle: WorkflowHandle[Any, Any]) -> int:
        with contextlib.suppress(Exception):
            progress = await handle.query("progress")
            return sum(1 for t in progress.get("tasks", []) if t.get("status") == "passed")
        return 0

    async def terminate(self, execution_id: str) -> None:
        """Ends the execution and every child still open, so nothing keeps the worker busy."""
        async for wf in self.client.list_workflows(self._query(execution_id)):
            if wf.close_time is None and self._belongs(wf.id, execution_id):
                with contextlib.suppress(Exception):
                    await self.client.get_workflow_handle(wf.id).terminate("benchmark timeout")

    @staticmethod
    def _query(execution_id: str) -> str:
        return f'WorkflowId STARTS_WITH "{execution_id}"'

    @staticmethod
    def _belongs(workflow_id: str, execution_id: str) -> bool:
        return workflow_id == execution_id or workflow_id.startswith(execution_id + "/")

    async def workflows(self, execution_id: str, *, settle: float = 30.0) -> list[WorkflowRun]:
        """Every run of the execution's workflows (the execution, its phases and anything they
        start as `<id>/...`, continued-as-new runs included), with the server's own history
        length and size. Visibility lags a little: list until the answer is stable and closed."""
        deadline = time.monotonic() + settle
        previous: set[tuple[str, str]] = set()
        while True:
            listed = [
                wf
                async for wf in self.client.list_workflows(self._query(execution_id))
                if self._belongs(wf.id, execution_id)
            ]
            keys = {(wf.id, wf.run_id) for wf in listed}
            settled = keys == previous and all(wf.close_time is not None for wf in listed)
            if settled or time.monotonic() > deadline:
                break
            previous = keys
            await asyncio.sleep(0.5)
        runs = []
        for wf in listed:
            described = await self.client.get_workflow_handle(wf.id, run_id=wf.run_id).describe()
            info = described.raw_info
            runs.append(
                WorkflowRun(
                    workflow_id=wf.id,
                    run_id=wf.run_id,
                    events=described.history_length,
                    size_bytes=info.history_size_bytes,
                    start=described.start_time,
                    close=described.close_time,
                )
            )
        return runs


async def first_activity_start_after(
    client: Client, execution_id: str, after: datetime, *, timeout: float
) -> datetime:
    """The time of the first ActivityTaskStarted event after `after` in any workflow of the
    execution. Started events of retryable activities are written when the attempt ends, with
    the time it started, so this polls the open workflows' histories."""
    deadline = time.monotonic() + timeout
    while True:
        found: list[datetime] = []
        async for wf in client.list_workflows(Coord._query(execution_id)):
            if not Coord._belongs(wf.id, execution_id) or wf.close_time is not None:
                continue
            history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
            for event in history.events:
                if event.HasField("activity_task_started_event_attributes"):
                    when = event.event_time.ToDatetime().replace(tzinfo=after.tzinfo)
                    if when > after:
                        found.append(when)
        if found:
            return min(found)
        if time.monotonic() > deadline:
            raise BenchError(f"{execution_id}: no activity started within {timeout} s")
        await asyncio.sleep(0.05)


async def longest_heartbeat_timeout(client: Client, execution_id: str) -> timedelta | None:
    """The longest heartbeat timeout any activity of the execution was scheduled with: how
    long Temporal takes to notice a dead worker's activity."""
    longest: timedelta | None = None
    async for wf in client.list_workflows(Coord._query(execution_id)):
        if not Coord._belongs(wf.id, execution_id):
            continue
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        for event in history.events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                attrs = event.activity_task_scheduled_event_attributes
                if attrs.HasField("heartbeat_timeout"):
                    timeout = attrs.heartbeat_timeout.ToTimedelta()
                    longest = timeout if longest is None else max(longest, timeout)
    return longest


# --------------------------------------------------------------------------- machine


def machine_facts() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    try:
        binary = devserver.temporal_binary()
        version = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (devserver.DevServerError, OSError, subprocess.SubprocessError) as exc:
        version = f"unknown ({exc})"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "CPUs": f"{os.cpu_count()} x {model}",
        "memory": memory,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Temporal": version.replace("temporal version ", "CLI "),
        "coord commit": commit or "unknown",
        "load average at start": load,
    }
