"""The command specialist activity, with real processes."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.command_specialist import CommandSpecialistActivities
from coordinator.specialists import BUILTIN_DIR, load_specialist_file
from coordinator.work import SpecialistRequest, SpecialistResult

# Writes what the command received to seen.json in its working directory.
RECORDER = """
import json, os, sys
seen = {k: v for k, v in os.environ.items() if k.startswith("COORD_")}
seen["stdin"] = sys.stdin.read()
seen["cwd"] = os.getcwd()
seen["secret"] = os.environ.get("ANTHROPIC_API_KEY")
with open("seen.json", "w") as f:
    json.dump(seen, f)
print("recorded")
print("wrote seen.json")
print()
"""


@pytest.fixture
def acts(tmp_path: Path) -> CommandSpecialistActivities:
    return CommandSpecialistActivities(tmp_path / "artifacts")


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "worktree"
    path.mkdir()
    return path


def request(cwd: Path, command: str | None, **overrides: Any) -> SpecialistRequest:
    fields: dict[str, Any] = {
        "execution_id": "exec-1",
        "task_id": "schema",
        "task_title": "Add the schema",
        "task_prompt": "Create the schema.",
        "specialist": "scripted",
        "backend": "command",
        "command": command,
        "timeout_s": 10,
        "cwd": str(cwd),
        "attempt": 1,
    }
    fields.update(overrides)
    return SpecialistRequest(**fields)


async def run(acts: CommandSpecialistActivities, req: SpecialistRequest) -> SpecialistResult:
    return await ActivityEnvironment().run(acts.run, req)


async def test_task_reaches_the_command_in_env_and_stdin(
    acts: CommandSpecialistActivities,
    worktree: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    # In the worktree: the jail shows a command nothing else of the test's folder.
    script = worktree / "recorder.py"
    script.write_text(RECORDER)
    prompt = "Create the schema.\nUse 'quotes' and \"double quotes\" and $HOME literally.\n"
    req = request(
        worktree,
        f"{sys.executable} {script}",
        task_prompt=prompt,
        attempt=2,
        feedback="FAILED test_schema\nassert 1 == 2",
        guidance="use sqlite",
        files=["db/schema.sql", "db/models.py"],
        context_paths=["/docs/a.md", "/docs/b.md"],
    )
    result = await run(acts, req)

    assert (result.ok, result.exit_code, result.timed_out) == (True, 0, False)
    assert result.summary == "wrote seen.json"  # the last non-empty line
    assert (result.task_id, result.specialist, result.attempt) == ("schema", "scripted", 2)
    assert Path(result.log_path) == tmp_path / "artifacts/exec-1/tasks/schema/attempt-2.log"
    assert Path(result.log_path).read_text() == "recorded\nwrote seen.json\n\n"

    seen = json.loads((worktree / "seen.json").read_text())
    assert seen == {
        "COORD_TASK_ID": "schema",
        "COORD_TASK_TITLE": "Add the schema",
        "COORD_TASK_PROMPT": prompt,
        "COORD_ATTEMPT": "2",
        "COORD_FEEDBACK": "FAILED test_schema\nassert 1 == 2",
        "COORD_GUIDANCE": "use sqlite",
        "COORD_WORKSPACE": str(worktree),
        "COORD_CONTEXT": os.pathsep.join(["/docs/a.md", "/docs/b.md"]),
        "COORD_FILES": "db/schema.sql\ndb/models.py",
        "stdin": prompt,
        "cwd": str(worktree),
        "secret": None,
    }


async def test_non_zero_exit_is_a_failed_attempt_with_the_output(
    acts: CommandSpecialistActivities, worktree: Path
) -> None:
    result = await run(acts, request(worktree, "echo working; echo 'boom: it broke' >&2; exit 3"))
    assert (result.ok, result.exit_code, result.timed_out) == (False, 3, False)
    assert result.summary == "exited with code 3: boom: it broke"
    assert result.output_tail == "working\nboom: it broke\n"


async def test_timeout_is_a_failed_attempt(
    acts: CommandSpecialistActivities, worktree: Path
) -> None:
    result = await run(acts, request(worktree, "echo thinking; sleep 1000", timeout_s=1))
    assert (result.ok, result.exit_code, result.timed_out) == (False, None, True)
    assert result.summary == "timed out after 1 s: thinking"
    assert result.output_tail == "thinking\n"


@pytest.mark.parametrize("problem", ["missing cwd", "no command"])
async def test_infrastructure_problems_are_non_retryable_errors(
    acts: CommandSpecialistActivities, worktree: Path, tmp_path: Path, problem: str
) -> None:
    if problem == "missing cwd":
        gone = tmp_path / "no-such-worktree"
        req, expected = request(gone, "true"), str(gone)
    else:
        req, expected = request(worktree, None), "has no command"
    with pytest.raises(ApplicationError) as info:
        await run(acts, req)
    assert info.value.non_retryable
    assert expected in str(info.value)


async def test_builtin_shell_specialist_runs_a_multi_line_prompt(
    acts: CommandSpecialistActivities, worktree: Path
) -> None:
    shell, _ = load_specialist_file(BUILTIN_DIR / "shell.md")
    assert shell.command == 'sh -c "$COORD_TASK_PROMPT"'
    prompt = textwrap.dedent(
        """\
        mkdir -p gen
        printf '%s\\n' "it's \\"quoted\\"" > gen/a.txt
        for n in 1 2; do echo "line $n" >> gen/a.txt; done
        cd gen && ls > ../listing.txt
        echo "done in $(pwd)"
        """
    )
    req = request(worktree, shell.command, specialist="shell", task_prompt=prompt)
    result = await run(acts, req)

    assert result.ok, result.output_tail
    assert (worktree / "gen" / "a.txt").read_text() == 'it\'s "quoted"\nline 1\nline 2\n'
    assert (worktree / "listing.txt").read_text() == "a.txt\n"
    assert result.summary == f"done in {worktree}/gen"


async def test_a_prompt_too_large_for_the_environment_is_non_retryable(
    acts: CommandSpecialistActivities, worktree: Path
) -> None:
    # Linux caps one environment variable at 128 KiB; no retry changes that.
    req = request(worktree, "cat > /dev/null", task_prompt="x" * 200_000)
    with pytest.raises(ApplicationError) as info:
        await run(acts, req)
    assert info.value.non_retryable
    assert "too large" in str(info.value)
