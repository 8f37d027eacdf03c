"""How much a long wait costs: `CommentAnswers` hosted by a small workflow on the
time-skipping server (it has no custom search attributes, so not the execution itself), three
days waiting on an escalation, the real comment activities against the local GitHub."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from coordinator.escalation import Escalation, Resolution
from coordinator.execution import ExecutionInput, build_execution_input
from coordinator.handoff import HandoffState
from coordinator.report import Progress
from coordinator.validation import validate_plan_file
from tests.engine_support import make_repo, write_plan
from tests.github_server import GithubServer
from tests.workflows.test_comment_answers import (
    WRITER,
    WRITER_TOKEN,
    activities,
    replies_to,
    say,
)
from tests.workflows.test_github_handoff import REPO, TOKEN
from workflows.comment_answers import CommentAnswers


@workflow.defn(sandboxed=False)
class WaitingOnAComment:
    @workflow.run
    async def run(self, request: ExecutionInput) -> Progress:
        progress = Progress(
            execution_id=request.execution_id,
            plan_name=request.plan.name,
            phases=[],
            tasks=[],
            escalations=[Escalation(id="a", phase="implementation", reason="r", question="q")],
            handoff=HandoffState(repo=REPO, issue=1, enabled=True),
        )

        async def resolve(answer: Resolution) -> Escalation:
            escalation = progress.escalations[0]
            escalation.state, escalation.answer = "answered", answer
            return escalation

        answers = CommentAnswers(progress, request, resolve, lambda _: None, lambda *_: None)  # type: ignore[arg-type]
        answers.start()
        await workflow.wait_condition(lambda: not progress.pending_escalations)
        await answers.close()
        return progress


async def test_three_days_waiting_cost_a_few_hundred_reads(
    time_skipping_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    github = GithubServer(tmp_path / "github", token=TOKEN).start()
    github.add_person(WRITER, WRITER_TOKEN, "write")
    make_repo(tmp_path / "repo")
    github.add_repo(REPO, tmp_path / "repo")
    github.add_issue(REPO, "Greeting", "")
    plan = write_plan(tmp_path, {"tasks": [], "handoff": {"github": {"repo": REPO, "issue": 1}}})
    checked = validate_plan_file(plan)
    assert checked.plan is not None, checked.problems
    request = build_execution_input(checked.plan, plan, execution_id="polling")
    client = time_skipping_env.client
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[WaitingOnAComment],
            activities=activities(github),
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            handle = await client.start_workflow(
                WaitingOnAComment.run, request, id="polling", task_queue=task_queue
            )
            await time_skipping_env.sleep(timedelta(days=3))
            comment = say(github, WRITER_TOKEN, "/coord skip")
            progress = await handle.result()
    finally:
        github.stop()

    [escalation] = progress.escalations
    assert escalation.answer is not None and escalation.answer.by == WRITER
    assert len(replies_to(github, "polling", comment)) == 1
    reads = github.count("GET", rf"/repos/{REPO}/issues/1/comments")
    events = len((await handle.fetch_history()).events)
    # 30 s doubling to 10 min on the first day (about 150 reads), hourly after (48 more).
    assert 150 < reads < 230, reads
    assert events < 12 * reads, events
    print(f"3 days waiting: {reads} reads of the comments, {events} history events")
