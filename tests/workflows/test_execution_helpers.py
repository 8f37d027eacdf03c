"""The conductor's helpers that need no Temporal server: the task rows both the
implementation phase and the execution start from, the execution's task read model, and
what each phase's result means for the run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coordinator.branches import DiffSummary
from coordinator.execution import (
    ExecutionInput,
    GateRoundResult,
    ImplementationResult,
    IntegrationResult,
    PlanCheck,
    ReviewResult,
    SetupResult,
)
from coordinator.handoff import GithubHandoffResult, PullRequestRef
from coordinator.plan import Plan
from coordinator.report import ExecutionStatus, GateSummary, Progress, TaskState, Workspace
from workflows import phase_outcomes as outcomes
from workflows.task_board import TaskBoard, plan_task_states

PLAN = Plan.model_validate(
    {
        "name": "demo",
        "repository": ".",
        "tasks": [
            {"id": "db", "title": "Database", "layer": "base"},
            {"id": "cache", "title": "Cache", "layer": "base", "specialist": "ops"},
            {"id": "api", "title": "API", "layer": "service"},
            {"id": "docs", "title": "Docs", "depends_on": ["api", "api"]},
        ],
    }
)
WORKSPACE = Workspace(
    path="/w", branch="coord/demo", base_branch="main", base_commit="b" * 40, head_commit="h" * 40
)


def test_task_rows_resolve_dependencies_and_routes() -> None:
    rows = plan_task_states(PLAN.tasks, {"db": "backend"})
    assert [(r.id, r.depends_on, r.specialist, r.status) for r in rows] == [
        ("db", [], "backend", "pending"),  # routed by setup
        ("cache", [], "ops", "pending"),  # the plan's own choice
        ("api", ["db", "cache"], None, "pending"),  # the layer rule
        ("docs", ["api"], None, "pending"),  # explicit, repeats collapsed
    ]


def _progress() -> Progress:
    return Progress(
        execution_id="e",
        plan_name="demo",
        phases=[],
        tasks=plan_task_states(PLAN.tasks, {}),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _board() -> TaskBoard:
    return TaskBoard(_progress())


def _state(tid: str, status: str) -> TaskState:
    return TaskState.model_validate({"id": tid, "title": tid, "status": status})


def test_the_board_changes_only_the_tasks_an_update_names() -> None:
    board = _board()
    board.apply([_state("api", "running"), _state("db", "passed")])
    assert [t.status for t in board.tasks] == ["passed", "pending", "running", "pending"]
    assert board.passed() == ["db"]
    assert board.unfinished() == ["cache", "api", "docs"]
    assert not board.all_passed()


def test_the_phase_result_brings_every_state_or_only_the_last_updates() -> None:
    board = _board()
    board.apply_result(
        ImplementationResult(tasks=[], updates=[_state("cache", "skipped")], head="h")
    )
    assert [t.status for t in board.tasks] == ["pending", "skipped", "pending", "pending"]
    every = [_state(t.id, "passed") for t in board.tasks]
    board.apply_result(ImplementationResult(tasks=every, head="h"))
    assert board.all_passed()


def test_a_cancelled_phase_leaves_its_unfinished_tasks_pending() -> None:
    board = _board()
    board.apply([_state("db", "passed"), _state("cache", "escalated"), _state("api", "fixing")])
    board.phase_cancelled()
    assert [t.status for t in board.tasks] == ["passed", "pending", "pending", "pending"]


def _setup(**fields: object) -> SetupResult:
    return SetupResult.model_validate({"workspace": WORKSPACE, "check": PlanCheck(), **fields})


def test_setup_outcomes() -> None:
    failed = outcomes.setup(_setup(check=PlanCheck(errors=["x", "y"])), PLAN)
    assert (failed.status, failed.summary) == ("failed", "2 plan problem(s)")
    assert failed.stop is not None and failed.stop.status == ExecutionStatus.FAILED
    aborted = outcomes.setup(_setup(aborted=True), PLAN)
    assert aborted.stop is not None and aborted.stop.status == ExecutionStatus.PARTIAL
    commands = [{"name": "a", "run": "make a"}, {"name": "b", "run": "make b"}]
    with_setup = Plan.model_validate({**PLAN.model_dump(exclude_defaults=True), "setup": commands})
    done = outcomes.setup(_setup(skipped_setup=["b"]), with_setup)
    assert done.stop is None and done.status == "done"
    assert done.summary == "branch coord/demo from main, 1 of 2 setup commands"
    assert done.todo == [
        "Setup command 'b' was skipped by a human: gates and specialists ran without it."
    ]


def test_phases_input_is_what_setup_found() -> None:
    check = PlanCheck(routes={"db": "backend"})
    request = ExecutionInput(execution_id="e", plan=PLAN, plan_dir="/p", repository="/r")
    phase_input = outcomes.phases_input(request, _setup(check=check, context_paths=["c.md"]))
    assert phase_input.routes == {"db": "backend"}
    assert phase_input.workspace == WORKSPACE and phase_input.context_paths == ["c.md"]


@pytest.mark.parametrize("aborted", [False, True])
def test_implementation_and_validation_stop_when_aborted(aborted: bool) -> None:
    tasks = [_state("a", "passed"), _state("b", "failed")]
    done = outcomes.implementation(ImplementationResult(tasks=[], aborted=aborted, head="h"), tasks)
    assert done.summary == "1 of 2 tasks passed"
    assert (done.stop is not None) == aborted
    gates = outcomes.validation(GateRoundResult(passed=False, aborted=aborted, head="h"))
    assert gates.summary == "system gates failing (skipped by a human)"
    assert (gates.stop is not None) == aborted


def test_integration_counts_the_github_result_only_with_a_handoff() -> None:
    diff = DiffSummary(files=["a"], total_files=1, stat="", diff_path="d", head="h" * 40)
    github = GithubHandoffResult(
        pull_request=PullRequestRef.model_validate(
            {"number": 7, "url": "https://github.test/acme/app/pull/7"}
        ),
        aborted=True,
    )
    result = IntegrationResult(head="h" * 40, diff=diff, github=github)
    local = outcomes.integration(result, "coord/demo", handed_off=False)
    assert local.summary == "coord/demo at hhhhhhhhhhhh, 1 files changed"
    assert local.stop is None
    handed = outcomes.integration(result, "coord/demo", handed_off=True)
    assert handed.summary.endswith("; pull request #7")
    assert handed.stop is not None and handed.stop.todo == "Aborted at the GitHub handoff."


def test_review_outcomes() -> None:
    approved = outcomes.review(ReviewResult(verdict="approve", rounds=1, head="h"))
    assert (approved.summary, approved.todo, approved.stop) == ("approve (1 rounds)", [], None)
    left = outcomes.review(ReviewResult(verdict="changes_requested", rounds=3, head="h"))
    assert left.todo == ["The reviewer's findings were not all addressed: see Review."]
    stopped = outcomes.review(ReviewResult(verdict="changes_requested", aborted=True, head="h"))
    assert stopped.todo == [] and stopped.stop is not None


def test_the_ending_counts_skipped_gates_and_unfinished_work() -> None:
    progress = _progress()
    board = TaskBoard(progress)
    board.apply([_state(t.id, "passed") for t in board.tasks])
    assert outcomes.ending(ExecutionStatus.COMPLETED, progress, []) == (
        ExecutionStatus.COMPLETED,
        [],
    )
    assert outcomes.ending(ExecutionStatus.COMPLETED, progress, ["review it"])[0] == (
        ExecutionStatus.PARTIAL
    )
    progress.record_gate(
        GateSummary(name="lint", level="system", scope="branch", passed=False, exit_code=1)
    )
    status, notes = outcomes.ending(ExecutionStatus.COMPLETED, progress, [])
    assert status == ExecutionStatus.PARTIAL
    assert notes == ["Still failing, skipped by a human: system gate lint (branch)."]
    # A run that did not complete keeps its status, and gets no note.
    assert outcomes.ending(ExecutionStatus.CANCELLED, progress, []) == (
        ExecutionStatus.CANCELLED,
        [],
    )
    board.apply([_state("api", "skipped")])
    progress.gates = []
    assert outcomes.ending(ExecutionStatus.COMPLETED, progress, [])[0] == ExecutionStatus.PARTIAL
