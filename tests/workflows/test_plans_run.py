"""A spec-kit feature folder run end to end: `coord run specs/001-greeting/ --wait` on the real
server, with command specialists; its tasks.md comes back ticked on the execution branch."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

from temporalio.client import Client

from coordinator.report import ExecutionReport
from tests.cli_support import coord
from tests.engine_support import branch_log, command_agent, git, make_repo
from workflows.execution import ExecutionWorkflow

TASKS = """
# Tasks: Greeting

**Input**: Design documents from `/specs/001-greeting/`

```yaml
reviewer: null
max_parallel: 2
gates:
  - {name: greeting, run: "grep -q t003 src/greeting.txt"}
```

## Format: `[ID] [P?] [Story] Description`

## Phase 1: Setup

- [X] T001 Create the project skeleton
- [ ] T002 @scribe Write the first word in src/t002.txt
- [ ] T003 [P] @scribe Write the second word in src/t003.txt

## Phase 2: User Story 1 - Greet (Priority: P1)

- [ ] T004 [US1] @joiner Join the words into src/greeting.txt (depends on T002, T003)
- [ ] T005 [P] [US1] @context-reader List the design documents in docs/context.txt
- [-] T006 [US1] Translate the greeting (dropped: out of scope)

## Validation Checklist

- [ ] Every task names its file
"""

DOCS = {
    "spec.md": "# Spec\nSay hello.\n",
    "plan.md": "# Plan\nTwo words, then join them.\n",
    "research.md": "# Research\nGreetings are short.\n",
    "data-model.md": "# Data model\nA greeting is text.\n",
    "quickstart.md": "# Quickstart\ncat src/greeting.txt\n",
    "contracts/greeting.md": "# Contract\nOne line per word.\n",
}


async def test_a_spec_kit_feature_folder_runs_and_its_tasks_are_ticked(
    cli_env: dict[str, str], worker: None, client: Client, tmp_path: Path
) -> None:
    feature = "specs/001-greeting"
    files = {f"{feature}/{name}": text for name, text in DOCS.items()}
    files[f"{feature}/tasks.md"] = textwrap.dedent(TASKS).lstrip("\n")
    repo = make_repo(tmp_path / "repo", {"README.md": "# greeting\n", **files})
    agents = repo / ".claude" / "agents"
    command_agent(
        agents, "scribe", 'mkdir -p src && echo "$COORD_TASK_ID" > "src/$COORD_TASK_ID.txt"'
    )
    command_agent(agents, "joiner", "cat src/t002.txt src/t003.txt > src/greeting.txt")
    command_agent(
        agents,
        "context-reader",
        'mkdir -p docs && echo "$COORD_CONTEXT" | tr ":" "\\n" | xargs -n1 basename | sort '
        "> docs/context.txt",
    )
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "agents")

    eid = f"speckit-{uuid.uuid4().hex[:8]}"
    code, out, err = await coord(
        "run", str(repo / feature), "--wait", "--id", eid, env=cli_env, timeout=240
    )
    assert code == 0, out + err
    # No repository named anywhere: the one the plan is in, and coord says so.
    assert f"using the git repository it is in, {repo}" in err

    report: ExecutionReport = await client.get_workflow_handle_for(
        ExecutionWorkflow.run, eid
    ).result()
    assert report.status == "Complete", report.to_markdown()
    assert report.plan_name == "001-greeting"
    tasks = {t.id: t for t in report.tasks}
    assert sorted(tasks) == ["t002", "t003", "t004", "t005"]
    # The author's dependencies and the phase order; T003 [P] runs alongside T002.
    assert sorted(tasks["t004"].depends_on) == ["t002", "t003"]
    assert tasks["t002"].depends_on == [] and tasks["t003"].depends_on == []
    assert tasks["t005"].depends_on == ["t002", "t003"]
    log = branch_log(report)
    assert log.index("t004: Join the words into src/greeting.txt") > max(
        log.index("t002: Write the first word in src/t002.txt"),
        log.index("t003: Write the second word in src/t003.txt"),
    )
    ws = report.workspace
    assert ws is not None
    clone = Path(ws.path)
    # The design documents reached the specialists as context.
    assert git(clone, "show", f"{ws.branch}:docs/context.txt").split() == [
        "data-model.md",
        "greeting.md",
        "plan.md",
        "quickstart.md",
        "research.md",
        "spec.md",
    ]
    # Every passed task ticked its line in the task's own commit; the skipped one stays.
    ticked = git(clone, "show", f"{ws.branch}:{feature}/tasks.md")
    for task_id in ("T001", "T002", "T003", "T004", "T005"):
        assert f"- [X] {task_id} " in ticked, ticked
    assert "- [-] T006 [US1] Translate" in ticked
    assert "- [ ] Every task names its file" in ticked
    for task_id in ("t002", "t003", "t004", "t005"):
        assert tasks[task_id].plan_tick == f"ticked in {feature}/tasks.md"
        changed = git(clone, "show", "--name-only", "--format=", tasks[task_id].commit or "")
        assert f"{feature}/tasks.md" in changed.split()
    markdown = report.to_markdown()
    assert f"- In {feature}/tasks.md: ticked t002, t003, t004, t005" in markdown

    # Run again: the branch's tasks.md says all is done, so there is nothing left to do.
    git(repo, "fetch", "-q", str(clone), f"{ws.branch}:done")
    git(repo, "checkout", "-q", "done")
    code, out, err = await coord("run", str(repo / feature), "--id", f"{eid}-again", env=cli_env)
    assert code == 0, out + err
    assert "nothing left to do" in out
