"""Building blocks for engine tests: a repository and a plan in tmp_path, a worker, answers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle

from coordinator.escalation import Escalation
from coordinator.execution import build_execution_input
from coordinator.report import ExecutionReport, Progress
from coordinator.validation import validate_plan_file
from worker import build_worker
from workflows.execution import ExecutionWorkflow


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    for name, text in (files or {"README.md": "# demo\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return path


def command_agent(folder: Path, name: str, command: str) -> None:
    """A plan-local command specialist."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(
        f"---\nname: {name}\ndescription: test agent {name}\nbackend: command\n"
        f"command: {json.dumps(command)}\ntimeout: 60\n---\nA test agent.\n"
    )


def write_plan(tmp_path: Path, plan: dict[str, Any]) -> Path:
    plan = {"name": "engine", "repository": "./repo", "reviewer": None, **plan}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


# A task's command that leaves a git repository of its own in its worktree (a cloned library).
CLONE_A_LIBRARY = (
    "mkdir -p vendor/lib && cd vendor/lib && git init -q && echo 'x = 1' > lib.py && "
    "git add -A && git -c user.name=a -c user.email=a@a commit -qm lib"
)


def shell_task(task_id: str, prompt: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "title": f"Task {task_id}",
        "specialist": "shell",
        "prompt": prompt,
        **extra,
    }


@asynccontextmanager
async def running_worker(
    client: Client,
    task_queue: str,
    root: Path,
    extra_activities: list[Any] | None = None,
    workflows: list[type] | None = None,
) -> AsyncIterator[Path]:
    async with build_worker(
        client,
        task_queue=task_queue,
        workspace_root=root / "workspaces",
        artifacts_root=root / "artifacts",
        replace_activities=extra_activities or (),
        replace_workflows=workflows or (),
    ):
        yield root / "workspaces"


async def start(
    client: Client, task_queue: str, plan_file: Path
) -> WorkflowHandle[ExecutionWorkflow, ExecutionReport]:
    result = validate_plan_file(plan_file)
    assert result.ok and result.plan is not None, [str(p) for p in result.problems]
    request = build_execution_input(
        result.plan,
        Path(result.plan_file or plan_file),  # a folder: the plan file found in it
        execution_id=f"t-{uuid.uuid4().hex[:10]}",
    )
    return await client.start_workflow(
        ExecutionWorkflow.run, request, id=request.execution_id, task_queue=task_queue
    )


async def wait_for(
    handle: WorkflowHandle[ExecutionWorkflow, ExecutionReport],
    condition: Callable[[Progress], bool],
    timeout: float = 60,
) -> Progress:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        progress = await handle.query(ExecutionWorkflow.progress)
        if condition(progress):
            return progress
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met; progress: {progress.model_dump_json()}")
        await asyncio.sleep(0.2)


async def pending_escalation(
    handle: WorkflowHandle[ExecutionWorkflow, ExecutionReport], timeout: float = 60
) -> Escalation:
    progress = await wait_for(handle, lambda p: bool(p.pending_escalations), timeout)
    return progress.pending_escalations[0]


def worktrees(report: ExecutionReport) -> list[str]:
    """Git's own list of the clone's worktrees besides the clone itself."""
    ws = report.workspace
    assert ws is not None
    listed = git(Path(ws.path), "worktree", "list", "--porcelain")
    paths = [line.split(" ", 1)[1] for line in listed.splitlines() if line.startswith("worktree ")]
    return [p for p in paths if Path(p) != Path(ws.path)]


def branch_log(report: ExecutionReport) -> list[str]:
    """Commit subjects on the execution branch since its base, oldest first."""
    ws = report.workspace
    assert ws is not None
    out = git(Path(ws.path), "log", "--reverse", "--format=%s", f"{ws.base_commit}..{ws.branch}")
    return out.splitlines() if out else []
