"""Plans on real repositories, end to end (real Temporal server, real git, real processes):
setup commands and the prepared environment, env / env_from, context documents, the status
file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.process_env import MissingVariableError, command_env
from coordinator.environment import CommandEnvironment
from coordinator.escalation import Action, Resolution
from coordinator.report import ExecutionReport
from tests.cli_support import coord
from tests.engine_support import (
    branch_log,
    command_agent,
    git,
    make_repo,
    pending_escalation,
    running_worker,
    shell_task,
    start,
    write_plan,
)
from workflows.execution import ExecutionWorkflow


def make_wheel(folder: Path) -> Path:
    """A tiny installable package, `tinydep` (VALUE = 42): pip installs it with no index."""
    files = {
        "tinydep/__init__.py": "VALUE = 42\n",
        "tinydep-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n",
        "tinydep-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append("tinydep-1.0.dist-info/RECORD,,")
    files["tinydep-1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "tinydep-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def history_text(history_json: str) -> str:
    """A history as JSON with every payload decoded: what anyone with access can read."""
    parts: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "data" and isinstance(value, str):
                    parts.append(base64.b64decode(value).decode(errors="replace"))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(history_json))
    return history_json + "\n".join(parts)


PYTHON_REPO = {
    "calc.py": "import tinydep\n\n\ndef answer() -> int:\n    return tinydep.VALUE\n",
    "test_calc.py": "import unittest\n\nimport calc\n\n\nclass T(unittest.TestCase):\n"
    "    def test_answer(self) -> None:\n        self.assertEqual(calc.answer(), 42)\n",
    ".gitignore": "__pycache__/\n",
}
# python3: the worker's `python` may be a shim in its home (pyenv), which the jail hides.
UNIT_TESTS = {"name": "unit", "run": "python3 -m unittest -q test_calc"}
ALL_FILES = {"name": "files", "run": "test -f t3.txt"}


def venv_setup(wheel: Path) -> list[dict[str, object]]:
    return [
        {"name": "venv", "run": f'{sys.executable} -m venv "$COORD_ENV_DIR"', "timeout": 120},
        {
            "name": "deps",
            "run": f"pip install --no-index --no-cache-dir --disable-pip-version-check -q {wheel}",
            "timeout": 120,
        },
    ]


def test_command_env_composes_the_prepared_environment_and_passes_names_through(
    tmp_path: Path,
) -> None:
    worker = {
        "PATH": "/usr/bin",
        "HOME": "/h",
        "SVC_TOKEN": "t0k",
        "GH_TOKEN": "g",
        "PYTHONHOME": "/p",
    }
    environment = CommandEnvironment(env={"A": "1"}, env_from=["SVC_TOKEN"], env_dir=str(tmp_path))
    env = command_env(environment, {"COORD_TASK_ID": "x"}, base=worker)
    assert env["PATH"] == f"{tmp_path / 'bin'}:/usr/bin"
    assert (env["COORD_ENV_DIR"], env["A"], env["SVC_TOKEN"], env["COORD_TASK_ID"]) == (
        str(tmp_path),
        "1",
        "t0k",
        "x",
    )
    assert "GH_TOKEN" not in env  # scrubbed unless passed by name
    # Only the base variables come from the worker: HOME is the command's own (its sandbox).
    assert "HOME" not in env and "PYTHONHOME" not in env
    assert "VIRTUAL_ENV" not in env  # not a venv (yet)
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    env = command_env(environment, base=worker)
    assert env["VIRTUAL_ENV"] == str(tmp_path) and "PYTHONHOME" not in env
    with pytest.raises(MissingVariableError, match="env_from: NOPE, ALSO not set"):
        command_env(CommandEnvironment(env_from=["NOPE", "HOME", "ALSO"]), base=worker)


async def test_gates_pass_in_fresh_worktrees_only_thanks_to_setup(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", PYTHON_REPO)
    # In the repository: the setup commands' jail shows them nothing else of the test's folder.
    wheel = make_wheel(repo / "wheels").relative_to(repo)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "wheel")
    task = shell_task("doc", "echo 'the answer is 42' > ANSWER.md", gates=[UNIT_TESTS])
    without_setup = {"repository": str(tmp_path / "repo"), "tasks": [task], "gates": [UNIT_TESTS]}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plan_with = write_plan(tmp_path / "a", {**without_setup, "setup": venv_setup(wheel)})
    plan_without = write_plan(tmp_path / "b", without_setup)

    async with running_worker(client, task_queue, tmp_path) as workspaces:
        handle = await start(client, task_queue, plan_with)
        without = await start(client, task_queue, plan_without)
        report = await handle.result()
        # Without setup the task's gate cannot import the dependency: three failed attempts
        # and a question for a human whose output says why.
        escalation = await pending_escalation(without, timeout=90)
        await without.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.ABORT),
            result_type=type(escalation),
        )
        aborted = await without.result()

    assert report.status == "Complete", report.to_markdown()
    assert [(g.level, g.name, g.passed) for g in report.tasks[0].gates] == [("task", "unit", True)]
    assert [(g.level, g.name, g.passed) for g in report.gates] == [("system", "unit", True)]
    setup = report.phases[0]
    assert (setup.status, setup.summary.endswith("2 of 2 setup commands")) == ("done", True)
    # The environment lives beside the clone, not in it: nothing to commit, nothing to ignore.
    ws = Path(report.workspace.path)  # type: ignore[union-attr]
    env_dir = workspaces.resolve() / handle.id / "env"
    assert (env_dir / "pyvenv.cfg").is_file()
    assert git(ws, "status", "--porcelain") == ""
    assert branch_log(report) == ["doc: Task doc"]
    assert (tmp_path / "artifacts" / handle.id / "setup" / "deps-1.log").is_file()

    assert escalation.task_id == "doc"
    assert "ModuleNotFoundError: No module named 'tinydep'" in escalation.output_tail
    assert aborted.status == "Partial"


async def test_setup_per_worktree_runs_once_per_worktree_and_is_never_committed(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo", {"README.md": "# demo\n"})
    # Like `npm ci`: a folder of installed things git would see, and a tracked file touched.
    # Where it ran goes to the environment folder, which every command may write.
    setup = (
        'echo "$COORD_WORKSPACE" >> "$COORD_ENV_DIR/setup-runs.log"; '
        "mkdir -p deps/tool && echo ok > deps/tool/x; echo touched >> README.md"
    )
    plan = write_plan(
        tmp_path,
        {
            "setup": [{"name": "install", "run": setup}],
            "setup_per_worktree": True,
            "tasks": [
                shell_task(
                    "a",
                    "echo a > a.txt",
                    depends_on=[],
                    gates=[{"name": "deps", "run": "test -f deps/tool/x"}],
                ),
                shell_task("b", "echo b > b.txt", depends_on=["a"]),
            ],
            "gates": [{"name": "deps", "run": "test -f deps/tool/x"}],
        },
    )
    async with running_worker(client, task_queue, tmp_path) as workspaces:
        report = await (await start(client, task_queue, plan)).result()

    assert report.status == "Complete", report.to_markdown()
    ws = Path(report.workspace.path)  # type: ignore[union-attr]
    where = (workspaces / report.execution_id / "env" / "setup-runs.log").read_text().split()
    assert where[0] == str(ws)  # the clone first, then each task's new worktree once
    assert sorted(Path(p).name for p in where[1:]) == ["a", "b"]
    # What setup made stays out of every commit; what it touched is put back.
    committed = git(ws, "ls-tree", "-r", "--name-only", report.workspace.branch)  # type: ignore[union-attr]
    assert sorted(committed.split()) == ["README.md", "a.txt", "b.txt"]
    assert git(ws, "show", f"{report.workspace.branch}:README.md") == "# demo"  # type: ignore[union-attr]
    assert git(ws, "status", "--porcelain") == ""
    log = (tmp_path / "artifacts" / report.execution_id / "setup" / "install-1.log").read_text()
    assert "changed tracked files, put back" in log and "README.md" in log


async def test_failing_setup_escalates_after_three_attempts_before_any_specialist(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    # In the environment folder, which every command may write (and the test can reach).
    setup = {
        "name": "toolchain",
        "run": 'cd "$COORD_ENV_DIR"; echo attempt >> attempts.log; test -f ready || '
        "{ echo 'no toolchain' >&2; exit 3; }",
    }
    tasks = [shell_task("t", 'touch "$COORD_ENV_DIR/ran"; echo t > t.txt')]
    plan = write_plan(tmp_path, {"setup": [setup], "tasks": tasks})
    async with running_worker(client, task_queue, tmp_path) as workspaces:
        handle = await start(client, task_queue, plan)
        env_dir = workspaces / handle.id / "env"
        ready, attempts, ran = env_dir / "ready", env_dir / "attempts.log", env_dir / "ran"
        escalation = await pending_escalation(handle)
        progress = await handle.query(ExecutionWorkflow.progress)
        # Three attempts, then a human: before any specialist spent anything.
        assert (escalation.phase, escalation.task_id, escalation.attempts) == ("setup", None, 3)
        assert attempts.read_text().count("attempt") == 3
        assert not ran.exists()
        assert [t.status for t in progress.tasks] == ["pending"]
        assert progress.status == "escalated" and progress.phase == "setup"
        assert "setup command 'toolchain' exited with code 3: no toolchain" in escalation.last_error
        assert "no toolchain" in escalation.output_tail
        assert all(Path(a).is_file() for a in escalation.artifacts) and escalation.artifacts

        ready.touch()  # the human fixes the worker, then retries
        await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.RETRY),
            result_type=type(escalation),
        )
        report = await handle.result()

    assert report.status == "Complete", report.to_markdown()
    assert attempts.read_text().count("attempt") == 4
    assert ran.exists() and branch_log(report) == ["t: Task t"]
    assert [e.answer.action for e in report.escalations if e.answer] == [Action.RETRY]


async def test_aborting_a_failing_setup_ends_partial_with_nothing_run(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            "setup": [{"name": "broken", "run": "exit 1"}],
            "tasks": [shell_task("t", 'touch "$COORD_ENV_DIR/ran"')],
        },
    )
    async with running_worker(client, task_queue, tmp_path) as workspaces:
        handle = await start(client, task_queue, plan)
        ran = workspaces / handle.id / "env" / "ran"
        escalation = await pending_escalation(handle)
        await handle.execute_update(
            "resolve_escalation",
            Resolution(escalation_id=escalation.id, action=Action.ABORT),
            result_type=type(escalation),
        )
        report = await handle.result()
    assert report.status == "Partial"
    assert [(p.name, p.status) for p in report.phases][:2] == [
        ("setup", "failed"),
        ("implementation", "not_run"),
    ]
    assert not ran.exists()
    assert any("Aborted in setup" in item for item in report.human_todo)


async def test_context_documents_reach_command_agents_as_coord_context(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo", {"README.md": "# demo\n", "docs/requirements.md": "REQ-1\n"})
    folder = tmp_path / "notes"  # `coord run notes/`: the plan and its documents together
    folder.mkdir()
    (folder / "research.md").write_text("RESEARCH: use sqlite\n")
    (folder / "goal.md").write_text("GOAL: ship it\n")
    command_agent(
        folder / "agents",
        "reader",
        'for f in $(echo "$COORD_CONTEXT" | tr ":" " "); do echo "== $f"; cat "$f"; done '
        "> seen.txt",
    )
    plan = write_plan(
        folder,
        {
            "repository": "../repo",
            "specialists_dir": "./agents",
            "context": ["docs/requirements.md", "research.md"],
            "tasks": [{"id": "read", "title": "Read the notes", "specialist": "reader"}],
        },
    )
    assert plan == folder / "plan.yaml"
    async with running_worker(client, task_queue, tmp_path) as workspaces:
        handle = await start(client, task_queue, folder)
        report = await handle.result()

    assert report.status == "Complete", report.to_markdown()
    ws = Path(report.workspace.path)  # type: ignore[union-attr]
    seen = git(ws, "show", f"{report.workspace.branch}:seen.txt")  # type: ignore[union-attr]
    copies = workspaces.resolve() / handle.id / "artifacts" / "context"
    # Listed documents in plan order, then the ones found by their names; all absolute copies.
    assert seen.splitlines() == [
        f"== {copies / 'requirements.md'}",
        "REQ-1",
        f"== {copies / 'research.md'}",
        "RESEARCH: use sqlite",
        f"== {copies / 'goal.md'}",
        "GOAL: ship it",
    ]


async def test_env_and_env_from_reach_gates_and_specialists_and_secrets_stay_out_of_history(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("I7_SERVICE_TOKEN", "s3cret-value")
    monkeypatch.setenv("I7_OTHER_TOKEN", "not-for-plans")
    make_repo(tmp_path / "repo")
    expected = hashlib.sha256(b"s3cret-value").hexdigest()
    command_agent(
        tmp_path / "agents",
        "envy",
        'printf "%s|%s|%s|%s\\n" "$GREETING" "$PORT" "$I7_SERVICE_TOKEN" "${I7_OTHER_TOKEN:-}" '
        "> seen.txt",
    )
    gate = {
        "name": "env",
        # The expected value's digest: the gate's command line is in history.
        "run": 'test "$GREETING" = hello && test "$(printf %s "$I7_SERVICE_TOKEN" | sha256sum)" '
        f'= "{expected}  -" && test -z "${{I7_OTHER_TOKEN:-}}"',
    }
    plan = write_plan(
        tmp_path,
        {
            "specialists_dir": "./agents",
            "env": {"GREETING": "hello", "PORT": 8080},
            "env_from": ["I7_SERVICE_TOKEN"],
            "tasks": [{"id": "e", "title": "Env", "specialist": "envy", "gates": [gate]}],
            "gates": [gate],
        },
    )
    (tmp_path / "other").mkdir()
    missing = write_plan(
        tmp_path / "other",
        {
            "repository": str(tmp_path / "repo"),
            "env_from": ["I7_NOT_SET_ANYWHERE"],
            "tasks": [shell_task("x", "true")],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        report = await handle.result()
        history = await handle.fetch_history()
        failed = await (await start(client, task_queue, missing)).result()

    assert report.status == "Complete", report.to_markdown()
    ws = Path(report.workspace.path)  # type: ignore[union-attr]
    assert git(ws, "show", f"{report.workspace.branch}:seen.txt") == "hello|8080|s3cret-value|"  # type: ignore[union-attr]
    assert [g.passed for g in report.tasks[0].gates + report.gates] == [True, True]
    # The name travels, the value never does.
    recorded = history_text(history.to_json())
    assert "I7_SERVICE_TOKEN" in recorded
    assert "s3cret-value" not in recorded
    assert failed.status == "Failed"
    assert any("env_from: I7_NOT_SET_ANYWHERE not set" in p for p in failed.problems)


async def test_status_file_is_always_valid_json_and_ends_as_coord_status(
    client: Client, cli_env: dict[str, str], worker: None, task_queue: str, tmp_path: Path
) -> None:
    make_repo(tmp_path / "repo")
    # The last task waits until the test has seen the file show some tasks done and not all
    # (then it says so with `go`): no race between fast tasks and the file's updates. Unjailed,
    # so it sees `go`; after two minutes it gives up and the run fails.
    go = tmp_path / "go"
    last = f"for i in $(seq 1200); do [ -f {go} ] && break; sleep 0.1; done; test -f {go}"
    tasks = [
        shell_task(f"t{i}", f"{wait}echo {i} > t{i}.txt", depends_on=deps)
        for i, (deps, wait) in enumerate(
            [([], ""), ([], ""), (["t0"], ""), (["t1", "t2"], f"{last} && ")]
        )
    ]
    write_plan(
        tmp_path,
        {
            "status_file": True,
            "max_parallel": 2,
            "tasks": tasks,
            "gates": [ALL_FILES],
            "confine": "off",
        },
    )
    eid = f"status-{uuid.uuid4().hex[:8]}"
    # `coord run FOLDER`: the plan.yaml in it.
    code, out, err = await coord("run", str(tmp_path), "--id", eid, env=cli_env)
    assert code == 0, err
    handle = client.get_workflow_handle(eid, result_type=ExecutionReport)
    status_file: Path | None = None
    reads: list[dict[str, Any]] = []
    result = asyncio.ensure_future(handle.result())
    while not result.done():
        if status_file is None:
            progress = await handle.query(ExecutionWorkflow.progress)
            if progress.workspace is not None:
                status_file = (
                    Path(progress.workspace.path) / ".coord/execution" / f"{handle.id}.json"
                )
        if status_file is not None and status_file.exists():
            reads.append(json.loads(status_file.read_text()))  # never half a file
            if 0 < sum(t["status"] == "passed" for t in reads[-1]["tasks"]) < 4:
                go.touch()
        await asyncio.sleep(0.01)
    report: ExecutionReport = await result

    assert report.status == "Complete", report.to_markdown()
    assert status_file is not None
    code, out, err = await coord("status", handle.id, "--json", env=cli_env)
    assert code == 0, err
    final = json.loads(status_file.read_text())
    assert final == json.loads(out)
    assert final["status"] == "completed"
    # It followed the run: a task done while others were not, then the end.
    done_counts = [sum(t["status"] == "passed" for t in r["tasks"]) for r in reads]
    assert 0 < min(c for c in done_counts if c) < 4, done_counts
    # Never committed, never in git's way.
    ws = Path(report.workspace.path)  # type: ignore[union-attr]
    assert git(ws, "status", "--porcelain") == ""
    assert ".coord" not in git(ws, "ls-tree", "-r", "--name-only", report.workspace.branch)  # type: ignore[union-attr]
    # Nor the temporary file a write renames into place.
    git(ws, "check-ignore", "-q", f".coord/execution/.{handle.id}.json.x1y2z3.tmp")
    # Written by a local activity: one small marker per write, the progress not in history.
    history = await handle.fetch_history()
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert 3 <= len(markers) <= 40, len(markers)
    assert max(e.ByteSize() for e in markers) < 2000
