"""What a task's specialist activity does after its turn (activities/task_turn.py): the
task's gates, then its landing, in the same activity, so that a task that passes is one
activity and one workflow task. Behind TURN_PATCH; executions from before it schedule the
gates and the landing themselves.

The landing goes along only where nothing may need to hold the branch still meanwhile: a plan
without layer gates (their gate loop and its fixes hold the phase's `branch_lock` while tasks
run) and no lock held now. The specialist's activity then counts as a landing in flight
(workflows/landings.py) from its start to its result. Workflow code: deterministic, no I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.branches import MergeRequest, task_branch
    from coordinator.execution import PhaseInput
    from coordinator.plan import Task
    from coordinator.work import FollowThrough
    from workflows import steps

if TYPE_CHECKING:
    from workflows.phase import PhaseWorkflow

TURN_PATCH = "task-turn-in-one-activity"


def merge_request(request: PhaseInput, task: Task, branch: str | None = None) -> MergeRequest:
    """The merge of the task's commit (from `branch`, its worktree's) onto the execution
    branch, ticking it in its plan file when the plan came from one."""
    ws, source = request.workspace, request.plan.source
    return MergeRequest(
        workspace=ws.path,
        execution_branch=ws.branch,
        task_branch=branch or task_branch(request.execution_id, task.id),
        task_id=task.id,
        title=task.title,
        tick=source.request_for(task.id) if source is not None else None,
    )


def follow_through(
    phase: PhaseWorkflow, request: PhaseInput, task: Task, *, base: str | None
) -> FollowThrough | None:
    """What the specialist's activity does after a successful turn; None: nothing (an
    execution from before TURN_PATCH). `base`: the worktree's base commit when the workflow
    made the worktree (else the activity knows it)."""
    if not workflow.patched(TURN_PATCH):
        return None
    ws = request.workspace
    merge, home = None, None
    if not request.plan.layer_gates and not phase.branch_lock.locked():
        merge = steps.findable_after_a_move(ws, merge_request(request, task))
        home = ws.home if ws.host_queue is not None else None  # as steps.land
    return FollowThrough(gates=task.gates, merge=merge, home=home, base_commit=base)
