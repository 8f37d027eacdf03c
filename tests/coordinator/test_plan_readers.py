"""The plan readers on the patterns real plans use: every pattern that used to fail (a
spec-kit, Kiro, Taskmaster or heading-style plan read wrong, or refused) has a test here."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.validate import validate_command
from coordinator.readers import detect, read_plan_text
from coordinator.readers.files import find_paths
from coordinator.readers.prose import statements
from coordinator.readers.refs import expand_range, parse_refs
from coordinator.specialists import Specialist, SpecialistRegistry, load_registry
from coordinator.validation import ValidationResult, format_summary, validate_plan_file


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def check(
    path: Path, registry: SpecialistRegistry | None = None, tag: str | None = None
) -> ValidationResult:
    return validate_plan_file(
        path, repository_override=path.parent, registry=registry or load_registry(), tag=tag
    )


def deps(result: ValidationResult) -> dict[str, list[str]]:
    assert result.plan is not None, [str(p) for p in result.problems]
    return {task.id: list(task.depends_on or []) for task in result.plan.tasks}


def messages(result: ValidationResult) -> list[tuple[str, int | None, str]]:
    return [(p.severity, p.line, p.message) for p in result.problems]


# --- spec-kit ------------------------------------------------------------------------------


def test_spec_kit_inline_and_detail_dependencies_are_the_authors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tasks.md",
        """
        # Tasks: Search

        ## Phase 1: Setup
        - [ ] T001 [P] Create the embeddings service in src/embeddings.py
        - [ ] T002 [P] Create the index in src/index.py
        - [ ] T003 [P] Wire search in src/search.py (depends on T001, T002)
        - [ ] T004 [P] Document search in docs/search.md
          - **Depends on**: T003 (search service), T001
        """,
    )
    result = check(path)
    assert result.reader == "speckit"
    assert deps(result) == {
        "t001": [],
        "t002": [],
        "t003": ["t001", "t002"],  # [P] would run it alongside: its author says otherwise
        "t004": ["t003", "t001"],
    }
    assert result.summary is not None
    assert result.summary.waves == [["t001", "t002"], ["t003"], ["t004"]]
    edges = {(e.task, e.depends_on): e.why for e in result.summary.edges}
    assert edges[("t003", "t001")] == "depends on inline (line 6)"
    assert edges[("t004", "t003")] == "depends on (line 8)"


def test_spec_kit_tasks_not_marked_p_run_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tasks.md",
        """
        # Tasks
        ## Phase 1: Setup
        - [ ] T001 Create the models in src/models.py
        - [ ] T002 Create the service in src/service.py
        - [ ] T003 [P] Write docs in docs/usage.md
        - [ ] T004 Wire the CLI in src/cli.py
        ## Phase 2: Polish
        - [ ] T005 [P] Lint src/models.py
        - [ ] T006 [P] Format src/models.py
        """,
    )
    result = check(path)
    assert deps(result) == {
        "t001": [],
        "t002": ["t001"],  # same file or not: not [P], so after the one above
        "t003": [],
        "t004": ["t002", "t003"],
        "t005": ["t004"],  # phase 2 after phase 1
        "t006": ["t004", "t005"],  # [P], but both name src/models.py
    }
    summary = format_summary(result)
    assert "read as a spec-kit tasks.md" in summary
    assert "t006 after t005: same file src/models.py" in summary
    assert "dependencies (6): 3 file order (not marked [P]), 2 phase order, 1 same file" in summary


def test_spec_kit_marks_labels_and_headings_that_are_not_phases(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tasks.md",
        """
        # Tasks
        ## Phase 1: Setup
        - [X] T001 Create the skeleton
        - [-] T002 Add telemetry (dropped)
        - [~] T003 Write the parser in src/parse.py
        ## Additional Tasks
        - [ ] T004 Write the README in README.md
          depends on: T002
        ## Notes
        - [P] tasks = different files, no dependencies
        - [US#] label maps a task to its user story
        ## Validation Checklist
        - [ ] All tasks name their files
        """,
    )
    result = check(path)
    assert result.ok, messages(result)
    # [~] is in progress: still to do; the open task under "Additional Tasks" is a phase of
    # its own, after Phase 1; depending on the skipped T002 is met.
    assert deps(result) == {"t003": [], "t004": ["t003"]}
    assert result.plan is not None and [t.layer for t in result.plan.tasks] == [
        "Phase 1",
        "Additional Tasks",
    ]
    assert messages(result) == [
        ("warning", 4, "1 task skipped by their author (`[-]`, cancelled), left out: t002"),
        (
            "warning",
            13,
            "1 checkbox item under 'Validation Checklist' is not a task: criteria and "
            "checklist sections hold no tasks",
        ),
    ]
    assert result.notes[0] == "1 task already done, left out: t001"


def test_spec_kit_dependency_statements(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tasks.md",
        """
        # Tasks
        ## Phase 3.1: Setup
        - [ ] T001 [P] Create src/a.py
        - [ ] T002 [P] Create src/b.py
        - [ ] T003 [P] Create src/c.py
        ## Phase 3.2: Core
        - [ ] T004 [P] Use a in src/d.py
        ## Dependencies
        - T001 blocks T002
        - T003 depends on T002 (uses b)
        - T004 before T001
        - T021 depends on a design decision
        """,
    )
    result = check(path)
    assert deps(result) == {
        "t001": [],
        "t002": ["t001"],
        "t003": ["t002"],
        "t004": ["t001", "t002", "t003"],
    }
    # The statement that contradicts the phases is not followed, and said so.
    assert messages(result) == [
        (
            "warning",
            11,
            "'t004 before t001' is not followed: t004 already waits for t001 (the plan's "
            "order), so it would be a cycle",
        )
    ]


def test_spec_kit_bold_ids_old_template_and_story_labels(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tasks.md",
        """
        # Tasks: Chat
        ## Phase 3.1: Setup
        - [x] **T001** Create the project
        - [ ] **T002** [P] [US1] Add the chat model in `api/models/chat.ts` (depends on T001-T001)
        ## Phase 3.2: Tests First (TDD) ⚠️ MUST COMPLETE BEFORE 3.3
        - [ ] **T003** [P] [US1] Contract test POST /chat in `tests/contract/chat.test.ts`
        """,
    )
    result = check(path)
    assert deps(result) == {"t002": [], "t003": ["t002"]}
    assert result.plan is not None
    task = result.plan.tasks[0]
    assert task.title == "Add the chat model in `api/models/chat.ts`"
    assert task.files == ["api/models/chat.ts"]
    assert task.prompt == "User story US1, in: Phase 3.1: Setup"
    assert result.plan.tasks[1].layer == "Phase 3.2"


# --- routing ----------------------------------------------------------------------------------


def test_tasks_no_specialist_matches_go_to_the_implementer(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tasks.md",
        """
        # Tasks
        ## Phase 1: 準備
        - [ ] T001 LLM エラーコードを backend/src/models/llm.py に定義する
        - [ ] T002 [P] Create types.ts
        - [ ] T003 [P] Review and update the README.md
        - [ ] T004 [P] Write tests for backend/src/models/llm.py
        """,
    )
    result = check(path)
    assert result.ok and not result.problems
    assert result.routes == {
        "t001": "implementer",
        "t002": "implementer",
        "t003": "implementer",  # the read-only reviewer never gets write work
        "t004": "test-developer",
    }
    assert result.notes == [
        "no specialist matches 3 tasks by their words: they go to the default specialist, "
        "implementer (t001, t002, t003)"
    ]


def test_agent_markers_map_to_agent_files_or_fall_back(tmp_path: Path) -> None:
    write(tmp_path, ".claude/agents/backend.md", "---\nname: backend\ndescription: APIs\n---\nB\n")
    path = write(
        tmp_path,
        "tasks.md",
        """
        # Tasks
        ## Phase 1
        - [ ] T001 @backend Add the endpoint in src/api.py
        - [ ] T002 @frontend Add the page in src/page.tsx
        """,
    )
    result = validate_plan_file(path, repository_override=tmp_path)  # the repository's agents
    assert result.ok
    assert result.routes == {"t001": "backend", "t002": "implementer"}
    assert result.plan is not None and result.plan.tasks[1].specialist is None
    assert messages(result) == [
        (
            "warning",
            4,
            "no specialist 'frontend' (no agent file .claude/agents/frontend.md): task 't002' "
            "goes to implementer instead",
        )
    ]


def test_without_an_implementer_an_unmatched_task_is_still_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "tasks.md", "# T\n## Phase 1\n- [ ] T001 Ponder the void\n")
    registry = SpecialistRegistry([Specialist(name="writer", description="x", source="t")])
    result = check(path, registry=registry)
    assert [p.message for p in result.errors] == [
        "no specialist matches task 't001'; set `specialist:` (known: writer)"
    ]


def test_read_only_specialists_are_never_routed() -> None:
    registry = load_registry()
    reviewer = registry.get("code-reviewer")
    assert reviewer is not None and reviewer.read_only
    assert not registry.get("implementer").read_only  # type: ignore[union-attr]
    assert registry.route("Review the pull request") is None
    assert registry.default_specialist() is registry.get("implementer")


# --- Kiro, Agent OS -----------------------------------------------------------------------------


def test_kiro_numbered_tasks_nested_and_optional(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ".kiro/specs/search/tasks.md",
        """
        # Implementation Plan

        - [x] 1. Set up the project
        - [ ] 2. Build the index
          - Shared notes for every step of the index
          - [ ] 2.1 Create `index.py` with the data model
            - _Requirements: 1.1_
          - [-] 2.2 Add the tokenizer to `index.py`
          - [ ]* 2.3 Write property tests for the tokenizer
        - [ ] 3. Checkpoint
        """,
    )
    result = check(path)
    assert result.reader == "kiro"
    assert deps(result) == {"2.1": [], "2.2": ["2.1"], "3": ["2.2"]}
    assert result.plan is not None
    prompt = result.plan.tasks[0].prompt
    assert prompt.startswith("- _Requirements: 1.1_\n\nPart of 2 Build the index:")
    assert "Shared notes for every step of the index" in prompt
    assert messages(result) == [
        ("warning", 9, "1 task optional (`- [ ]*`: remove the `*` to run them), left out: 2.3")
    ]
    assert result.plan.source is not None
    tick = result.plan.source.tasks["2.2"]
    assert tick.parent is not None and tick.parent.line == 4
    assert [c.line for c in tick.children] == [6, 8]  # the optional 2.3 does not hold it up


def test_cc_sdd_flat_subtasks_with_p_markers_and_phases(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tasks.md",
        """
        # Implementation Plan
        ## Phase A: 基盤
        - [ ] 1. 基盤を作る
        - [ ] 1.1 (P) 設定を読む
        - [ ] 1.2 (P) ログを書く
        - [ ] 1.3 両方をつなぐ
        ## Phase B: 仕上げ
        - [ ] 2. 仕上げる
        """,
    )
    result = check(path)
    assert deps(result) == {"1.1": [], "1.2": [], "1.3": ["1.1", "1.2"], "2": ["1.3"]}
    assert result.plan is not None and [t.layer for t in result.plan.tasks] == [
        "Phase A",
        "Phase A",
        "Phase A",
        "Phase B",
    ]


# --- heading-style ------------------------------------------------------------------------------


def test_task_headings_with_depends_on_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "docs/plans/rate-limit.md",
        """
        # Plan: rate limits

        ### Task 1: Add the limiter

        **Depends on:** none | **Files:** `src/limit.ts`

        - [ ] **Step 1: Write the failing test**
        - [ ] **Step 2: Make it pass**

        ### Task 2: Wire the limiter into login

        **Depends on:** Task 1
        **Files:**
        - Modify: `src/auth/login.ts:88-140`
        - Create: `src/auth/login.test.ts`

        ```ts
        ### Task 9: a heading in a code block is not a task
        ```

        ### Task 3: Document it ✅

        Done already.
        """,
    )
    result = check(path)
    assert result.reader == "headings"
    assert deps(result) == {"task-1": [], "task-2": ["task-1"]}
    assert result.plan is not None
    assert result.plan.tasks[1].files == ["src/auth/login.ts", "src/auth/login.test.ts"]
    assert "Step 1: Write the failing test" in result.plan.tasks[0].prompt
    assert result.plan.source is not None
    assert [i.line for i in result.plan.source.tasks["task-1"].items] == [7, 8]
    assert result.notes[0] == "1 task already done, left out: task-3"


# --- Taskmaster ---------------------------------------------------------------------------------


TAGGED = {
    "master": {
        "tasks": [
            {
                "id": 1,
                "title": "Set up the database",
                "description": "Postgres with migrations.",
                "details": "Use alembic.",
                "testStrategy": "Run the migrations on an empty database.",
                "status": "done",
                "dependencies": [],
            },
            {
                "id": 2,
                "title": "Build the API",
                "description": "REST endpoints.",
                "status": "pending",
                "dependencies": [1],
                "subtasks": [
                    {"id": 1, "title": "Routes", "status": "done", "dependencies": []},
                    {"id": 2, "title": "Handlers", "status": "pending", "dependencies": [1]},
                    {"id": 3, "title": "Errors", "status": "in-progress", "dependencies": ["2.2"]},
                ],
            },
            {"id": 3, "title": "Dashboard", "status": "pending", "dependencies": [2]},
            {"id": 4, "title": "Old idea", "status": "cancelled", "dependencies": []},
            {"id": 5, "title": "Later", "status": "deferred", "dependencies": []},
            {"id": 6, "title": "After later", "status": "pending", "dependencies": [5]},
        ],
        "metadata": {"created": "2025-01-01"},
    },
    "feature-x": {"tasks": [{"id": 1, "title": "X", "status": "pending", "dependencies": []}]},
}


def test_taskmaster_tagged_tasks_subtasks_and_statuses(tmp_path: Path) -> None:
    path = write(tmp_path, ".taskmaster/tasks/tasks.json", json.dumps(TAGGED, indent=2))
    result = check(path)
    assert result.reader == "taskmaster"
    # Task 2's subtasks are its tasks; depending on task 2 is depending on all of them.
    assert deps(result) == {"2.2": [], "2.3": ["2.2"], "3": ["2.2", "2.3"]}
    assert messages(result) == [  # at the lines of the tasks' "id"
        ("warning", 55, "1 task skipped by their author (`[-]`, cancelled), left out: 4"),
        ("warning", 61, "2 tasks deferred, left out: 5, 6"),
        ("warning", 67, "6 waits for deferred 5: deferred too"),
    ]
    assert result.plan is not None
    assert result.plan.tasks[0].prompt.startswith("Part of task 2: Build the API\nREST endpoints.")
    other = check(path, tag="feature-x")
    assert deps(other) == {"1": []}
    missing = check(path, tag="nope")
    assert next(p.message for p in missing.errors) == (
        "no tag 'nope' in this tasks.json: choose one with --tag (tags: master, feature-x)"
    )


def test_taskmaster_legacy_with_test_strategy_in_the_prompt(tmp_path: Path) -> None:
    legacy = {"tasks": TAGGED["master"]["tasks"][:1]}  # type: ignore[index]
    legacy["tasks"][0] = {**legacy["tasks"][0], "status": "pending"}
    path = write(tmp_path, "tasks/tasks.json", json.dumps(legacy))
    result = check(path)
    assert result.plan is not None and len(result.plan.tasks) == 1
    assert result.plan.tasks[0].prompt == (
        "Postgres with migrations.\n\nUse alembic.\n\n"
        "Test strategy: Run the migrations on an empty database."
    )


def test_a_plan_json_is_still_plan_data() -> None:
    text = '{"name": "x", "repository": ".", "tasks": [{"id": "a", "title": "A"}]}'
    assert detect(text, "plan.json") == "json"
    loaded = read_plan_text(text, "plan.json", name="plan.json")
    assert loaded.reader is None and loaded.data is not None


# --- folders and repositories -----------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("validate")(validate_command)

    @app.command("other")
    def other() -> None:
        pass

    return app


def test_a_spec_kit_folder_brings_its_documents(tmp_path: Path) -> None:
    feature = tmp_path / "specs" / "003-search"
    write(feature, "tasks.md", "# Tasks\n## Phase 1\n- [ ] T001 Create src/a.py\n")
    for name in ("spec.md", "plan.md", "research.md", "data-model.md", "quickstart.md"):
        write(feature, name, f"# {name}\n")
    write(feature, "contracts/api.yaml", "openapi: 3.0.0\n")
    write(feature, "contracts/empty.md", "")
    write(feature, "checklists/requirements.md", "- [ ] not context\n")
    result = validate_plan_file(feature, repository_override=tmp_path, registry=load_registry())
    assert result.ok, messages(result)
    assert result.plan is not None and result.plan.name == "003-search"
    assert result.plan_file == str(feature / "tasks.md")
    assert result.plan.context == [
        "research.md",
        "plan.md",
        "spec.md",
        "data-model.md",
        "quickstart.md",
        "contracts/api.yaml",
    ]


def test_a_taskmaster_folder_uses_its_current_tag(tmp_path: Path) -> None:
    folder = tmp_path / ".taskmaster"
    write(folder, "tasks/tasks.json", json.dumps(TAGGED))
    write(folder, "state.json", json.dumps({"currentTag": "feature-x"}))
    write(folder, "docs/prd.txt", "The product.\n")
    result = validate_plan_file(folder, repository_override=tmp_path, registry=load_registry())
    assert deps(result) == {"1": []}
    assert result.plan is not None and result.plan.context == [str(folder / "docs" / "prd.txt")]
    assert "Taskmaster tag 'feature-x' (of master, feature-x)" in result.notes


def test_without_a_repository_the_git_repository_of_the_plan_is_used(
    tmp_path: Path, cli: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    plain = write(tmp_path, "plain/tasks.md", "# T\n## Phase 1\n- [ ] T001 Create src/a.py\n")
    result = CliRunner().invoke(cli, ["validate", str(plain)])
    assert result.exit_code == 2
    assert "repository: field required: the plan names no repository to work on" in (result.stderr)
    (tmp_path / "plain" / ".git").mkdir()  # what `git_repository` looks for
    result = CliRunner().invoke(cli, ["validate", str(plain)])
    assert result.exit_code == 0, result.output
    assert f"the plan names no repository: using the git repository it is in, {plain.parent}" in (
        result.stdout
    )


def test_detection_is_by_content(tmp_path: Path) -> None:
    kiro = "# Plan\n- [ ] 1. One\n- [ ] 2. Two\n"
    speckit = "# Tasks\n## Phase 1\n- [ ] T001 One\n"
    headings = "# Plan\n### Task 1: One\n### Task 2: Two\n"
    assert [detect(t, "notes.md") for t in (kiro, speckit, headings)] == [
        "kiro",
        "speckit",
        "headings",
    ]
    assert detect("# Plan\n## L0: Base\n- [ ] T001 One\n", "tasks.md") == "breakdown"
    path = write(tmp_path, "whatever.txt", speckit)
    assert check(path).reader == "speckit"


# --- small parts ------------------------------------------------------------------------------


def test_references_ranges_and_remarks() -> None:
    texts = [r.text for r in parse_refs("T014 (embeddings service), T020-T022 and Task 3", 1)]
    assert texts == ["T014", "T020-T022", "task 3"]
    assert expand_range("T020-T022") == ["t020", "t021", "t022"]
    assert expand_range("Tasks 1-3") == ["task-1", "task-2", "task-3"]
    assert parse_refs("none (tests only)", 1) == []


def test_file_paths_in_titles() -> None:
    assert find_paths(
        "Add ping in frontend/src/ws.ts and `backend/api.py`, see https://x.io/a.md, "
        "ghcr.io/app:1.0, POST /api/chat, src/, a Next.js page and .eslintrc.json"
    ) == ["frontend/src/ws.ts", "backend/api.py", ".eslintrc.json"]


def test_dependency_statements() -> None:
    assert statements("Setup (T001-T002) → Core (T003)") == [(["t003"], ["t001", "t002"])]
    assert statements("T019 and T020 depend on T018 (hook must exist before)") == [
        (["t019", "t020"], ["t018"])
    ]
    assert statements("US2 before US5; T021 depends on a decision") == []
