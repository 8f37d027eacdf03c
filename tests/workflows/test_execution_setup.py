"""The execution workflow and its setup phase, end to end on a real Temporal server and git."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.workspace import WorkspaceActivities
from coordinator.execution import (
    ExecutionInput,
    PrepareWorkspaceInput,
    build_execution_input,
)
from coordinator.plan import Plan
from coordinator.report import ExecutionReport, Workspace
from coordinator.validation import validate_plan_file
from coordinator.visibility import SEARCH_ATTRIBUTES
from tests.conftest import EXAMPLES
from worker import WORKFLOWS, activities
from workflows import search_attributes as sa
from workflows.execution import ExecutionWorkflow
from workflows.setup_phase import SetupPhaseWorkflow

DEMO_PLAN = EXAMPLES / "hello-service" / "plan.yaml"


def load(plan_file: Path, **overrides: object) -> Plan:
    result = validate_plan_file(plan_file)
    assert result.plan is not None, [str(p) for p in result.problems]
    return result.plan.model_copy(update=overrides)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path, branch: str = "trunk") -> Path:
    path.mkdir(parents=True)
    (path / "app.py").write_text("print('hi')\n")
    git(path, "init", "-q", "-b", branch)
    git(path, "add", "-A")
    git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return path


@pytest.fixture
async def workspaces(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[Path]:
    """A worker on a fresh task queue; yields its workspace root."""
    root = tmp_path / "workspaces"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities(root, root / "artifacts"),
    ):
        yield root


async def run_execution(
    client: Client, task_queue: str, request: ExecutionInput
) -> ExecutionReport:
    return await client.execute_workflow(
        ExecutionWorkflow.run, request, id=request.execution_id, task_queue=task_queue
    )


async def test_demo_plan_runs_to_complete(
    client: Client, task_queue: str, workspaces: Path
) -> None:
    request = build_execution_input(load(DEMO_PLAN), DEMO_PLAN)
    report = await run_execution(client, task_queue, request)

    assert report.status == "Complete", report.to_markdown()
    assert [(p.name, p.status) for p in report.phases] == [
        ("setup", "done"),
        ("implementation", "done"),
        ("validation", "done"),
        ("integration", "done"),
        ("review", "done"),
    ]
    attempts = {t.id: (t.status, t.attempts) for t in report.tasks}
    # `shout` fails its lint gate once and the fix loop repairs it; the rest pass at once.
    assert attempts.pop("shout") == ("passed", 2)
    assert set(attempts.values()) == {("passed", 1)}
    ws = report.workspace
    assert ws is not None
    assert Path(ws.path) == workspaces / request.execution_id / "repo"
    assert ws.branch == f"coord/{request.execution_id}"
    subjects = git(Path(ws.path), "log", "--format=%s", f"{ws.base_commit}..{ws.branch}")
    assert sorted(subjects.splitlines()) == sorted(f"{t.id}: {t.title}" for t in report.tasks)
    assert git(Path(ws.path), "rev-parse", ws.branch) == ws.head_commit
    assert report.review.startswith("approve")
    assert all(g.passed for g in report.gates)
    # The user's folder is imported, never turned into a repository in place.
    assert not (EXAMPLES / "hello-service" / "repo" / ".git").exists()

    # Phases are child workflows with deterministic ids.
    for phase in ("setup", "implementation", "validation", "integration", "review"):
        child = await client.get_workflow_handle(f"{request.execution_id}/{phase}").describe()
        assert child.workflow_type.lower() == f"{phase}phase"
    # The Web UI can filter on the status the execution ended with.
    desc = await client.get_workflow_handle(request.execution_id).describe()
    assert desc.typed_search_attributes.get(sa.STATUS) == "completed"
    assert desc.typed_search_attributes.get(sa.PROGRESS) == 100
    assert desc.typed_search_attributes.get(sa.PLAN) == "hello-service"
    assert "### Final Status: Complete" in report.to_markdown()


def test_search_attribute_keys_match_the_registered_table() -> None:
    assert {key.name: key.indexed_value_type.name for key in sa.ALL} == {
        name: kind.upper() for name, kind in SEARCH_ATTRIBUTES.items()
    }


async def test_git_repository_defaults_to_its_current_branch(
    client: Client, task_queue: str, workspaces: Path, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "src", branch="trunk")
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        "name: branches\nrepository: ./src\nbranch: feature/x\nreviewer: null\n"
        "tasks:\n  - {id: t, title: T, specialist: shell, prompt: 'echo x > x.txt'}\n"
    )
    report = await run_execution(
        client, task_queue, build_execution_input(load(plan_file), plan_file)
    )

    assert report.status == "Complete", report.to_markdown()
    ws = report.workspace
    assert ws is not None
    assert (ws.base_branch, ws.branch) == ("trunk", "feature/x")
    assert ws.base_commit == git(repo, "rev-parse", "HEAD")
    # Cloned, not modified: the source repository has no new branch.
    assert "feature/x" not in git(repo, "branch", "--list")


async def test_clone_url_repository_brings_its_own_specialists(
    client: Client, task_queue: str, workspaces: Path, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "remote")
    agents = repo / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "db.md").write_text(
        "---\nname: db-expert\ndescription: Designs SQL schemas\nbackend: command\n"
        "command: sh -c true\n---\nYou design schemas.\n"
    )
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "agents")
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        f"name: remote\nrepository: file://{repo}\nreviewer: null\n"
        "tasks:\n  - {id: schema, title: Create the schema, specialist: db-expert}\n"
    )
    # Before the clone the specialist is unknown: a warning, not an error.
    checked = validate_plan_file(plan_file)
    assert checked.ok, [str(p) for p in checked.problems]
    assert "checked again on the clone" in str(checked.warnings[0])

    assert checked.plan is not None
    report = await run_execution(client, task_queue, build_execution_input(checked.plan, plan_file))
    assert report.tasks[0].specialist == "db-expert"
    assert report.tasks[0].status == "passed", report.to_markdown()


async def test_claude_specialists_without_a_key_fail_at_setup(
    client: Client,
    task_queue: str,
    workspaces: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before any work, not after three failed attempts: the worker has no Anthropic key."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    make_repo(tmp_path / "src")
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        "name: keyless\nrepository: ./src\n"
        "tasks:\n  - {id: t, title: T, specialist: implementer, prompt: do it}\n"
    )
    report = await run_execution(
        client, task_queue, build_execution_input(load(plan_file), plan_file)
    )
    assert report.status == "Failed"
    (problem,) = [p for p in report.problems if "ANTHROPIC_API_KEY" in p]
    assert "implementer (task t)" in problem and "code-reviewer (the reviewer)" in problem
    assert [t.attempts for t in report.tasks] == [0]


async def test_plan_that_became_invalid_is_reported_not_run(
    client: Client, task_queue: str, workspaces: Path, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "gone")
    request = build_execution_input(load(DEMO_PLAN), DEMO_PLAN, repository_override=repo)
    shutil.rmtree(repo)  # after `coord run` validated it, before the worker runs it

    report = await run_execution(client, task_queue, request)

    assert report.status == "Failed"
    assert report.phases[0].status == "failed"
    assert any(str(repo) in problem for problem in report.problems), report.problems
    assert not (workspaces / request.execution_id).exists()


async def test_missing_base_branch_fails_with_a_clear_message(
    client: Client, task_queue: str, workspaces: Path, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "src")
    plan = load(DEMO_PLAN, base_branch="does-not-exist")
    request = build_execution_input(plan, DEMO_PLAN, repository_override=repo)

    report = await run_execution(client, task_queue, request)

    assert report.status == "Failed"
    assert report.problems == [f"base branch 'does-not-exist' does not exist in {repo}"]


async def test_prepare_workspace_is_safe_to_repeat(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "src")
    acts = WorkspaceActivities(tmp_path / "ws")
    request = PrepareWorkspaceInput(
        execution_id="e1", repository=str(repo), base_branch=None, branch="coord/e1"
    )
    env = ActivityEnvironment()
    first = await env.run(acts.prepare_workspace, request)
    # A retry after a crash between "cloned" and "recorded" finds the clone and reuses it.
    (Path(first.path) / "work.txt").write_text("kept\n")
    second = await env.run(acts.prepare_workspace, request)
    assert second == first
    assert (Path(second.path) / "work.txt").read_text() == "kept\n"


async def test_cancel_reports_cancelled(client: Client, task_queue: str, tmp_path: Path) -> None:
    # No worker polls this queue yet, so the execution is still in setup when cancelled.
    request = build_execution_input(load(DEMO_PLAN), DEMO_PLAN)
    handle = await client.start_workflow(
        ExecutionWorkflow.run, request, id=request.execution_id, task_queue=task_queue
    )
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[],  # setup's activities never run: the cancel arrives first
    ):
        await handle.cancel()
        report = await handle.result()
    assert report.status == "Cancelled"


async def test_cancel_during_setup_reports_cancelled(client: Client, task_queue: str) -> None:
    started = asyncio.Event()

    # Stands in for a long clone: it waits until Temporal cancels it (heartbeats carry that).
    @activity.defn(name="prepare_workspace")
    async def slow_prepare(request: PrepareWorkspaceInput) -> Workspace:
        started.set()
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.1)

    request = build_execution_input(load(DEMO_PLAN), DEMO_PLAN)
    async with Worker(
        client, task_queue=task_queue, workflows=WORKFLOWS, activities=[slow_prepare]
    ):
        handle = await client.start_workflow(
            ExecutionWorkflow.run, request, id=request.execution_id, task_queue=task_queue
        )
        await asyncio.wait_for(started.wait(), 30)
        await handle.cancel()
        report = await handle.result()
    assert report.status == "Cancelled"
    assert report.phases[0].status == "failed"


async def test_time_skipping_server_runs_the_setup_phase(
    time_skipping_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    # The time-skipping server has no custom search attributes, so this runs the phase alone.
    client = time_skipping_env.client
    request = build_execution_input(load(DEMO_PLAN), DEMO_PLAN)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities(tmp_path / "ws", tmp_path / "ws" / "artifacts"),
    ):
        result = await client.execute_workflow(
            SetupPhaseWorkflow.run,
            request,
            id=f"{request.execution_id}/setup",
            task_queue=task_queue,
        )
    assert result.ok
    assert result.workspace is not None
    assert result.workspace.branch == f"coord/{request.execution_id}"
