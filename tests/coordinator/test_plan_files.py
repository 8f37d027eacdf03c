"""Real plan files from public repositories (tests/fixtures/plans/README.md names each source):
each is read by the reader its content calls for, with the open tasks and the dependencies a
reading of the file gives, and `coord validate` accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.validate import validate_command
from coordinator.readers import detect
from coordinator.validation import ValidationResult, validate_plan_file

PLANS = Path(__file__).parents[1] / "fixtures" / "plans"


def validate(name: str) -> ValidationResult:
    result = validate_plan_file(PLANS / name, repository_override=PLANS)
    assert result.ok, [str(p) for p in result.errors]
    return result


def deps(result: ValidationResult) -> dict[str, list[str]]:
    assert result.plan is not None
    return {task.id: list(task.depends_on or []) for task in result.plan.tasks}


def chain(ids: list[str]) -> dict[str, list[str]]:
    """Each task after the one above it."""
    return {task: ids[k - 1 : k] if k else [] for k, task in enumerate(ids)}


@pytest.mark.parametrize(
    ("name", "reader", "open_tasks", "done"),
    [
        ("speckit/light-session-001.md", "speckit", 77, 0),
        ("speckit/local-voice-assistant-008.md", "speckit", 52, 11),
        ("speckit/agendamento-001.md", "speckit", 25, 0),
        ("speckit/helix-staking-001.md", "speckit", 3, 37),
        ("speckit/oriva-platform-003.md", "speckit", 0, 85),
        ("speckit/pepedawn-001.md", "speckit", 0, 55),
        ("speckit/tictactoe-014.md", "speckit", 0, 34),
        ("taskmaster/map-app.json", "taskmaster", 14, 1),
        ("taskmaster/scrumpoker.json", "taskmaster", 1, 35),
        ("taskmaster/edu-parser.json", "taskmaster", 5, 55),
        ("kiro/ci-time-tracker.md", "kiro", 33, 1),
        ("kiro/reservo-spot-location-hours.md", "kiro", 15, 0),
        ("kiro/oneco-rule-based-extraction.md", "kiro", 9, 21),
        ("agent-os/svg2pptx-dependency-injection.md", "kiro", 8, 24),
        ("headings/harness-engineering-phase5.md", "headings", 14, 0),
        ("headings/my-ai-setup-superpowers.md", "headings", 15, 0),
    ],
)
def test_each_file_is_read_with_its_open_tasks(
    name: str, reader: str, open_tasks: int, done: int
) -> None:
    text = (PLANS / name).read_text()
    assert detect(text, Path(name).name) == reader
    result = validate(name)
    assert result.reader == reader
    assert result.plan is not None and len(result.plan.tasks) == open_tasks
    assert result.nothing_to_do == (open_tasks == 0)
    left_out = next((n for n in result.notes if "already done" in n), "")
    assert left_out.startswith(f"{done} task") if done else not left_out
    # Every task runs: no specialist matching its words is a note, not an error.
    assert set(result.routes) == {task.id for task in result.plan.tasks}


def test_light_session_phases_p_markers_and_shared_files() -> None:
    found = deps(validate("speckit/light-session-001.md"))
    assert {task: found[task] for task in ("t001", "t002", "t005", "t006", "t007", "t008")} == {
        "t001": [],
        "t002": [],  # [P]: alongside T001
        "t005": [],
        "t006": ["t001", "t002", "t003", "t004", "t005"],  # not [P]: after all above it
        "t007": [],
        "t008": ["t002"],  # [P], but package.json is T002's file too
    }
    assert found["t009"] == ["t006", "t007", "t008"]  # phase 2 after phase 1
    assert found["t012"] == ["t009", "t010", "t011"]
    assert found["t014"] == ["t012", "t013"]
    assert found["t015"] == found["t016"] == ["t014"]  # phase 3, [P]
    assert found["t017"] == ["t015", "t016"]
    assert found["t018"] == ["t017"]
    assert found["t061"] == ["t059", "t060"]  # [P] in phase 8, and popup.html after T060
    assert found["t062"] == ["t059", "t061"]
    assert found["t077"] == ["t074", "t075", "t076"]  # not [P]: after T074 and the [P] ones since


def test_local_voice_assistant_starts_where_the_done_tasks_stop() -> None:
    found = deps(validate("speckit/local-voice-assistant-008.md"))
    assert [found[t] for t in ("t012", "t013", "t014", "t015")] == [[], [], [], []]
    assert found["t016"] == ["t012", "t013", "t014", "t015"]  # tests first
    assert found["t018"] == ["t017"]
    assert found["t024"] == found["t025"] == found["t026"] == ["t023"]
    assert found["t027"] == ["t024", "t025", "t026"]
    assert found["t051"] == ["t048"]  # [P] in phase 7
    assert found["t052"] == ["t050", "t051"]
    assert found["t056"] == ["t053", "t054"]  # [P], and backend/src/api/websocket.py
    assert found["t057"] == ["t054", "t055", "t056"]


def test_agendamento_tasks_on_app_js_never_run_at_once() -> None:
    found = deps(validate("speckit/agendamento-001.md"))
    assert found["t004"] == []
    assert found["t005"] == ["t003", "t004"]
    assert found["t007"] == ["t003", "t004", "t006"]  # [P], but app.js is T006's too
    assert found["t008"] == ["t003", "t004", "t007"]
    assert found["t009"] == ["t006", "t007", "t008"]
    assert [found[t] for t in ("t022", "t023", "t024", "t025")] == [["t021"]] * 4


def test_helix_staking_runs_the_last_phase_in_order() -> None:
    assert deps(validate("speckit/helix-staking-001.md")) == chain(["t035", "t039", "t040"])


@pytest.mark.parametrize(
    "name", ["speckit/oriva-platform-003.md", "speckit/pepedawn-001.md", "speckit/tictactoe-014.md"]
)
def test_files_with_every_task_done_are_nothing_to_do(name: str, cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["validate", str(PLANS / name), "--repo", str(PLANS)])
    assert result.exit_code == 0, result.output
    assert "nothing left to do" in result.stdout


def test_taskmaster_dependencies_and_subtasks() -> None:
    assert deps(validate("taskmaster/map-app.json")) == {
        "2": [],
        "3": [],
        "4": ["2", "3"],
        "5": [],
        "6": ["4"],
        "7": [],
        "8": ["5", "7"],
        "9": ["6", "8"],
        "10": ["6", "7"],
        "11": ["6", "7"],
        "12": ["9", "11"],
        "13": ["4", "6", "11"],
        "14": [],
        "15": ["14"],
    }
    # Subtask 3 of task 10 is the one left; its siblings and its parent's needs are done.
    assert deps(validate("taskmaster/scrumpoker.json")) == {"10.3": []}
    assert deps(validate("taskmaster/edu-parser.json")) == {
        "11.1": [],
        "11.2": ["11.1"],
        "11.3": ["11.1", "11.2"],
        "11.4": ["11.3"],
        "11.5": ["11.4"],
    }


def test_kiro_and_agent_os_run_in_order_except_p() -> None:
    ci = deps(validate("kiro/ci-time-tracker.md"))
    assert ci == chain(list(ci))
    assert list(ci)[:4] == ["2.1", "2.2", "3.1", "3.2"] and "5" in ci
    reservo = validate("kiro/reservo-spot-location-hours.md")
    assert deps(reservo) == chain([str(n) for n in range(1, 16)])
    assert [p.message for p in reservo.warnings] == [
        "5 tasks optional (`- [ ]*`: remove the `*` to run them), left out: 16.1, 16.2, 16.3, "
        "16.4, 16.5"
    ]
    assert deps(validate("kiro/oneco-rule-based-extraction.md")) == {
        "5.1": [],  # (P)
        "5.2": [],
        "5.3": [],
        "6.2": ["5.1", "5.2", "5.3"],  # the next phase; 6.1 is done
        "6.3": ["6.2"],
        "7.1": ["6.3"],
        "7.2": ["6.3"],
        "7.3": ["6.3"],
        "7.4": ["6.3"],
    }
    agent_os = deps(validate("agent-os/svg2pptx-dependency-injection.md"))
    assert agent_os == chain([f"4.{n}" for n in range(1, 9)])


def test_heading_plans_follow_their_depends_on_lines_or_else_file_order() -> None:
    harness = deps(validate("headings/harness-engineering-phase5.md"))
    before = [f"task-{n}" for n in range(1, 12)]
    assert harness == {
        "task-1": [],
        "task-2": [],
        "task-3": [],
        "task-4": ["task-3"],
        "task-5": [],
        "task-6": [],
        "task-7": ["task-6"],
        "task-8": ["task-7"],
        "task-9": [],
        "task-10": [],
        "task-11": ["task-10"],
        "task-12": before,  # "Tasks 1-11"
        "task-13": [],  # "none (tests against already-built Phase 1-4 tools)"
        "task-14": [*before, "task-12", "task-13"],
    }
    superpowers = validate("headings/my-ai-setup-superpowers.md")
    assert deps(superpowers) == chain([f"task-{n}" for n in range(1, 16)])
    assert superpowers.summary is not None
    assert [layer.name for layer in superpowers.summary.layers][:2] == [
        "Phase 1: Agent Restructure",
        "Phase 2: New Agents",
    ]


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("validate")(validate_command)

    @app.command("other")
    def other() -> None:  # a second command keeps "validate" a subcommand, as in coord
        pass

    return app


@pytest.mark.parametrize("name", sorted(p.relative_to(PLANS).as_posix() for p in PLANS.glob("*/*")))
def test_coord_validate_accepts_every_file(name: str, cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["validate", str(PLANS / name), "--repo", str(PLANS)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("read as ")
