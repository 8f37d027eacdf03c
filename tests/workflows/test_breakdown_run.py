"""A Markdown breakdown run end to end: `coord run plan.md --wait` on the real server."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

from temporalio.client import Client

from coordinator.report import ExecutionReport
from tests.cli_support import coord
from tests.engine_support import branch_log, command_agent, git, make_repo, worktrees
from workflows.execution import ExecutionWorkflow

BREAKDOWN = """
# Letters and numbers

Two streams run side by side; inside a stream, tasks run in order. A2 appends to what A1
wrote, so the system gate below only passes if they ran in that order.

```yaml
repository: ./repo          # relative to this file, not to where coord runs
specialists_dir: ./agents
reviewer: null
max_parallel: 2
layer_gates:
  - {name: stream-files, run: "ls a.txt b.txt 2>/dev/null | grep -q txt"}
```

## Stream A: Letters

- [x] A0: Already done, so never run (shell)
  ```sh
  exit 1
  ```
- [ ] A1: Write a.txt (shell)
  files: a.txt
  gates: `grep -q one a.txt`
  ```sh
  echo one > a.txt
  ```
- [ ] A2: Append to a.txt (appender)
  files: a.txt
  two

## Stream B: Numbers

- [ ] B1: Write b.txt (shell)
  files: b.txt
  echo 1 > b.txt

## Quality gates

- [ ] order: `test "$(cat a.txt)" = "$(printf 'one\\ntwo')"`
- [ ] `git status --porcelain` returns empty
"""


async def test_a_markdown_breakdown_runs_to_complete(
    cli_env: dict[str, str], worker: None, client: Client, tmp_path: Path
) -> None:
    folder = tmp_path / "plans"
    make_repo(folder / "repo")
    # A command specialist: appends the task's prompt to a.txt.
    command_agent(folder / "agents", "appender", 'printf "%s\\n" "$COORD_TASK_PROMPT" >> a.txt')
    plan = folder / "breakdown.md"
    plan.write_text(textwrap.dedent(BREAKDOWN).lstrip("\n"))

    eid = f"md-{uuid.uuid4().hex[:8]}"
    code, out, err = await coord("run", str(plan), "--wait", "--id", eid, env=cli_env)
    assert code == 0, out + err
    assert "### Final Status: Complete" in out
    # The ticked task is reported as left out, not run.
    assert "1 ticked `- [x]` task left out as done: a0" in err

    report: ExecutionReport = await client.get_workflow_handle_for(
        ExecutionWorkflow.run, eid
    ).result()
    assert report.status == "Complete", report.to_markdown()
    tasks = {t.id: t for t in report.tasks}
    assert sorted(tasks) == ["a1", "a2", "b1"]
    assert {t.status for t in tasks.values()} == {"passed"}
    assert tasks["a2"].depends_on == ["a1"]
    assert (tasks["a1"].layer, tasks["b1"].layer) == ("Stream A", "Stream B")
    log = branch_log(report)
    assert sorted(log) == ["a1: Write a.txt", "a2: Append to a.txt", "b1: Write b.txt"]
    assert log.index("a1: Write a.txt") < log.index("a2: Append to a.txt")
    ws = report.workspace
    assert ws is not None
    assert git(Path(ws.path), "show", f"{ws.branch}:a.txt") == "one\ntwo"
    gates = {(g.level, g.scope, g.name): g.passed for g in report.gates}
    assert gates == {
        ("layer", "Stream A", "stream-files"): True,
        ("layer", "Stream B", "stream-files"): True,
        ("system", "system", "order"): True,
        ("system", "system", "git status --porcelain"): True,
    }
    assert worktrees(report) == []
