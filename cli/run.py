"""`coord run PLAN` (or `--from-issue OWNER/REPO#N`): validate a plan, start its execution,
optionally follow it to the end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from pydantic import ValidationError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from cli.common import (
    AddressOption,
    JsonOption,
    NamespaceOption,
    fail,
    has_worker,
    run_async,
    settings_from,
)
from cli.exit_codes import ExitCode
from cli.follow import finish, follow, report_handle
from cli.plans import TagOption, validate_input
from cli.temporal_client import connect
from coordinator.checkboxes import item_texts
from coordinator.execution import (
    ExecutionInput,
    build_execution_input,
    execution_id_problem,
)
from coordinator.issue_plans import untrusted_settings
from coordinator.plan import GithubHandoff, Plan
from coordinator.report import ExecutionReport
from coordinator.settings import execution_ui_url
from coordinator.validation import (
    ValidationResult,
    format_problems,
    format_summary,
    validate_breakdown,
)
from coordinator.waiting import STATIC_DETAILS
from workflows import search_attributes as sa


def run_command(
    plan: Path | None = typer.Argument(
        None,
        help="The plan: a YAML or JSON plan, a Markdown plan (a breakdown, a spec-kit, Kiro or "
        "heading-style tasks.md), a Taskmaster tasks.json; or a folder holding one and the "
        "documents specialists read (specs/003-feature/: tasks.md with spec.md, plan.md, "
        "research.md, data-model.md, contracts/, quickstart.md; .taskmaster/; a folder with "
        "plan.yaml or breakdown.md and goal.md, requirements.md, research.md, plan.md).",
    ),
    tag: str | None = TagOption,
    from_issue: str | None = typer.Option(
        None,
        "--from-issue",
        metavar="OWNER/REPO#N",
        help="Run the Markdown breakdown in this GitHub issue's body; its boxes are ticked and "
        "its status comment kept as the execution goes (GITHUB_TOKEN, GITHUB_API_URL).",
    ),
    execution_id: str | None = typer.Option(
        None, "--id", help="Execution id (default: <plan name>-<random>)."
    ),
    repo: Path | None = typer.Option(None, "--repo", help="Run on this repository instead."),
    github: str | None = typer.Option(
        None,
        "--github",
        metavar="OWNER/REPO",
        help="Hand off to this GitHub repository (push, pull request, status comment); "
        "the worker needs GITHUB_TOKEN.",
    ),
    wait: bool = typer.Option(False, "--wait", help="Follow progress until the end."),
    json_output: bool = JsonOption,
    address: str | None = AddressOption,
    namespace: str | None = NamespaceOption,
) -> None:
    """Start an execution of PLAN (or of a GitHub issue's breakdown); print its id and Web UI
    link.

    Exit codes: 0 Complete, 1 Partial/Failed/Cancelled, 2 invalid plan or arguments,
    3 waiting on a human, 4 Temporal unreachable.
    """
    if execution_id is not None and (problem := execution_id_problem(execution_id)):
        fail(problem, ExitCode.INVALID)
    checked, plan_file = _plan_to_run(plan, from_issue, repo=repo, tag=tag, github=github)
    if github is not None:
        checked.handoff.github = _github_handoff(checked, github)
    request = build_execution_input(
        checked, plan_file, repository_override=repo, execution_id=execution_id
    )
    raise typer.Exit(int(run_async(_start(request, wait, json_output, address, namespace))))


def _plan_to_run(
    plan: Path | None,
    from_issue: str | None,
    *,
    repo: Path | None,
    tag: str | None,
    github: str | None,
) -> tuple[Plan, Path]:
    """The checked plan and the file it came from: PLAN's, or the issue's breakdown (exactly
    one of them). A plan with nothing left to do prints its summary and exits 0."""
    if (plan is None) == (from_issue is None):
        fail("give a plan file or --from-issue OWNER/REPO#N (one of them)", ExitCode.INVALID)
    if from_issue is not None:
        if github is not None:
            fail(
                "--from-issue hands off to the issue's repository: leave out --github",
                ExitCode.INVALID,
            )
        return _plan_from_issue(from_issue, repo)
    assert plan is not None
    result = validate_input(plan, repo=repo, tag=tag)
    checked, plan_file = _valid(result), Path(result.plan_file or plan)  # a folder's file
    if result.nothing_to_do:
        typer.echo(format_summary(result))
        raise typer.Exit(int(ExitCode.COMPLETE))
    return checked, plan_file


def _valid(result: ValidationResult) -> Plan:
    if result.plan is None or result.errors:
        typer.echo(format_problems(result), err=True)
        raise typer.Exit(int(ExitCode.INVALID))
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for note in result.notes:
        typer.echo(note, err=True)
    return result.plan


_ISSUE_REF = re.compile(
    r"^(?:https?://[^/]+/)?(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)(?:#|/issues/)(?P<n>\d+)/?$"
)


def _plan_from_issue(ref: str, repo: Path | None) -> tuple[Plan, Path]:
    """The issue's body read as a Markdown breakdown, handing off to the issue itself: its
    repository, its checkboxes (each task's own item, as read now), its status comment."""
    match = _ISSUE_REF.match(ref.strip())
    if match is None:
        fail(
            f"--from-issue: '{ref}' must look like owner/repo#123 (or an issue URL)",
            ExitCode.INVALID,
        )
    name, number = match["repo"], int(match["n"])
    # PyGithub is heavy to import: only `--from-issue` pays for it.
    from activities.github import GithubReadError, fetch_issue

    try:
        issue = fetch_issue(name, number)
    except GithubReadError as err:
        fail(f"--from-issue: {err}", ExitCode.INVALID)
    # Without `repository:` in its YAML block (or --repo), the plan runs on the issue's own
    # repository, cloned by the worker.
    defaults = {} if repo is not None else {"repository": issue.clone_url}
    parsed, result = validate_breakdown(
        issue.body,
        source=f"{name}#{number}",
        base_dir=Path.cwd(),
        defaults=defaults,
        repository_override=repo,
    )
    plan = _valid(result)
    if refused := untrusted_settings(plan, issue_repository=defaults.get("repository")):
        fail(
            f"--from-issue {name}#{number}: the issue's YAML block sets what only a plan file "
            "on this machine may set (whoever can edit the issue would choose it):\n  "
            + "\n  ".join(refused)
            + "\nRemove these from the issue, or save the breakdown as a file and run that.",
            ExitCode.INVALID,
        )
    plan.source = None  # its items are ticked in the issue, by the GitHub handoff
    texts = item_texts(issue.body)
    current = plan.handoff.github
    handoff = current.model_dump() if current is not None else {}
    plan.handoff.github = GithubHandoff.model_validate(
        {
            **handoff,
            "repo": name,
            "issue": number,
            "checkboxes": {
                t.id: texts[t.line] for t in parsed.tasks if not t.ticked and t.line in texts
            },
        }
    )
    # Relative paths in the breakdown's settings are taken from the current folder.
    return plan, Path.cwd() / f"issue-{number}.md"


def _github_handoff(plan: Plan, repo: str) -> GithubHandoff:
    """`--github owner/repo` on top of the plan's own handoff settings (issue, draft, ...)."""
    current = plan.handoff.github
    fields = current.model_dump() if current is not None else {}
    try:
        return GithubHandoff.model_validate({**fields, "repo": repo})
    except ValidationError:
        fail(f"--github: '{repo}' must look like 'owner/name'", ExitCode.INVALID)


async def _start(
    request: ExecutionInput,
    wait: bool,
    json_output: bool,
    address: str | None,
    namespace: str | None,
) -> ExitCode:
    settings = settings_from(address, namespace)
    client = await connect(settings)
    ui_url = execution_ui_url(settings, request.execution_id)
    request.ui_url = ui_url  # links in the pull request and the status comment
    try:
        # By name: importing the workflow (and the SDKs its activities use) would cost a
        # second of start-up to every `coord run`.
        await client.start_workflow(
            "ExecutionWorkflow",
            request,
            result_type=ExecutionReport,
            id=request.execution_id,
            task_queue=settings.task_queue,
            # An execution id names one run for good: reports and branches refer to it.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.PLAN, request.plan.name),
                    SearchAttributePair(sa.STATUS, "running"),
                ]
            ),
            static_summary=f"plan {request.plan.name}: {len(request.plan.tasks)} tasks",
            static_details=STATIC_DETAILS,
        )
    except WorkflowAlreadyStartedError:
        fail(f"an execution with id '{request.execution_id}' already exists", ExitCode.INVALID)
    if not json_output:
        typer.echo(f"started execution {request.execution_id}")
        if ui_url:
            typer.echo(f"Web UI: {ui_url}")
    if not await has_worker(client, settings):
        typer.echo(
            f"warning: no worker polls task queue '{settings.task_queue}' yet; "
            "start one with 'coord worker' (the execution waits for it)",
            err=True,
        )
    if not wait:
        if json_output:
            typer.echo(json.dumps({"execution_id": request.execution_id, "ui_url": ui_url}))
        return ExitCode.COMPLETE
    handle = report_handle(client, request.execution_id)
    last = await follow(handle, ui_url, to_stderr=json_output)
    return await finish(handle, last, ui_url, json_output=json_output)
