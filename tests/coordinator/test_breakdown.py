"""Markdown breakdowns as plans: the seeds' formats, the grammar, located errors, and the
equivalence of a YAML plan and its Markdown rendering."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.validate import validate_command
from coordinator.execution import build_execution_input
from coordinator.loader import load_plan_text
from coordinator.readers import ParsedPlan, TaskLine, parse_breakdown
from coordinator.specialists import Specialist, SpecialistRegistry
from coordinator.validation import (
    ValidationResult,
    validate_breakdown,
    validate_plan_data,
    validate_plan_file,
)
from tests.conftest import EXAMPLES

FIXTURES = Path(__file__).parents[1] / "fixtures" / "breakdowns"


def registry(*names: str) -> SpecialistRegistry:
    return SpecialistRegistry(
        Specialist(name=name, description=f"the {name}", source=f"test:{name}")
        for name in ("implementer", "shell", "test-developer", "code-reviewer", *names)
    )


def md(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def parse(text: str, **kwargs: Any) -> ParsedPlan:
    return parse_breakdown(md(text), "plan.md", **kwargs)


def rows(parsed: ParsedPlan) -> list[tuple[Any, ...]]:
    """(checkbox line, id, specialist, layer, depends_on) per task of the plan."""
    return [
        (
            parsed.lines[("tasks", k)],
            t["id"],
            t.get("specialist"),
            t.get("layer"),
            t.get("depends_on"),
        )
        for k, t in enumerate(parsed.data["tasks"])
    ]


def issues(parsed: ParsedPlan) -> list[tuple[str, int | None, str]]:
    return [(i.severity, i.line, i.message) for i in parsed.issues]


def located(result: ValidationResult) -> list[str]:
    return [f"{p.severity}: {p}" for p in result.problems]


# --- the seeds' formats ---------------------------------------------------------------------


def test_layered_tasks_of_the_execution_orchestrator() -> None:
    """specs/<spec>/layered-tasks.md: L0 -> L1 -> L2 -> L3, each layer after the last."""
    path = FIXTURES / "layered-tasks.md"
    parsed = parse_breakdown(path.read_text(), str(path))
    assert parsed.title == "Layered Tasks: F001 AI chat assistant"
    assert parsed.data["name"] == "layered-tasks-f001-ai-chat-assistant"
    assert rows(parsed) == [
        (22, "t2", "auth-specialist", "L0", None),
        (25, "t3", "ai-sdk-specialist", "L0", None),
        (32, "t4", "backend-specialist", "L1", None),
        (35, "t5", "backend-specialist", "L1", ["t4"]),
        (42, "t6", "frontend-specialist", "L1", None),
        (48, "t7", "ai-sdk-specialist", "L2", ["t5", "t6"]),
        (51, "t8", "memory-specialist", "L2", None),
        (56, "t9", "frontend-specialist", "L3", None),
        (58, "t10", "test-developer", "L3", None),
    ]
    tasks = {t["id"]: t for t in parsed.data["tasks"]}
    assert tasks["t2"]["files"] == ["supabase/config.toml", "src/lib/auth.ts"]
    assert tasks["t2"]["prompt"] == "/supabase:add-auth magic-link"
    assert tasks["t5"]["gates"] == [
        {
            "name": "pytest backend/tests/test_chat.py -q",
            "run": "pytest backend/tests/test_chat.py -q",
        },
        {"name": "types", "run": "mypy backend/app"},
    ]
    assert parsed.data["layer_gates"] == [{"name": "sync", "run": "make sync-check"}]
    # T1 is ticked: done, so left out, and the checkbox map still knows its line.
    assert parsed.ticked == ["t1"]
    assert parsed.checkbox_lines["t1"] == 19
    assert parsed.tasks[0] == TaskLine(
        id="t1",
        title="Create database schema for conversations and messages",
        line=19,
        ticked=True,
        group="L0",
        status="done",
    )
    assert issues(parsed) == [("warning", 19, "1 ticked `- [x]` task left out as done: t1")]

    reg = registry(
        "auth-specialist",
        "ai-sdk-specialist",
        "backend-specialist",
        "frontend-specialist",
        "memory-specialist",
    )
    result = validate_plan_file(path, registry=reg)
    assert result.errors == [], located(result)
    assert result.summary is not None
    assert [(layer.name, layer.tasks) for layer in result.summary.layers] == [
        ("L0", ["t2", "t3"]),
        ("L1", ["t4", "t5", "t6"]),
        ("L2", ["t7", "t8"]),
        ("L3", ["t9", "t10"]),
    ]
    # T5 waits for T4 only (its own `depends on:`), so it runs a wave after T4 and T6.
    assert result.summary.waves == [["t2", "t3"], ["t4", "t6"], ["t5"], ["t7", "t8"], ["t9", "t10"]]
    assert result.summary.critical_path == ["t2", "t4", "t5", "t7", "t9"]


def test_stream_breakdown_of_the_execution_coordinator() -> None:
    """notes/<topic>/breakdown.md: streams run in parallel, tasks in order inside a stream."""
    path = FIXTURES / "breakdown.md"
    parsed = parse_breakdown(path.read_text(), str(path))
    assert rows(parsed) == [
        (23, "task-2", "implementation-agent", "Stream A", []),  # task 1 is ticked
        (29, "task-3", "implementation-agent", "Stream B", []),
        (32, "task-4", "elixir-expert", "Stream B", ["task-3"]),
        # "(dependent)": after the streams before it (their last tasks).
        (37, "task-5", "implementation-agent", "Stream C", ["task-2", "task-4"]),
        (39, "task-6", "implementation-agent", "Stream C", ["task-5"]),
        # "depends on: Stream C" under the heading.
        (46, "task-7", "implementation-agent", "Stream D", ["task-6"]),
        (48, "task-8", "test-developer", "Stream D", ["task-7", "task-2"]),
    ]
    assert parsed.lines[("tasks", 3, "depends_on", 0)] == 35  # the "(dependent)" heading
    assert parsed.lines[("tasks", 5, "depends_on", 0)] == 44  # the stream's depends-on line
    assert parsed.lines[("tasks", 6, "depends_on", 1)] == 49  # the task's own
    assert parsed.data["gates"] == [
        {"name": "mix format --check-formatted", "run": "mix format --check-formatted"},
        {"name": "mix test", "run": "mix test"},
    ]
    # Gates under "Stream gates" run after each stream, as layer gates.
    assert parsed.data["layer_gates"] == [
        {"name": "mix test --only integration", "run": "mix test --only integration"}
    ]
    assert issues(parsed) == [
        ("warning", 20, "1 ticked `- [x]` task left out as done: task-1"),
        (
            "warning",
            65,
            "2 checkbox items under 'Success Criteria' are not tasks: criteria and "
            "checklist sections hold no tasks",
        ),
    ]
    result = validate_plan_file(path, registry=registry("implementation-agent", "elixir-expert"))
    assert result.errors == [], located(result)
    assert result.summary is not None
    assert result.summary.waves == [
        ["task-2", "task-3"],
        ["task-4"],
        ["task-5"],
        ["task-6"],
        ["task-7"],
        ["task-8"],
    ]


def test_demand_classifier_plan_with_go_quality_gates() -> None:
    """Tasks in a plain section (no layers or streams), dependencies by title, and the Go
    quality gate checklist read as system gates."""
    path = FIXTURES / "go-demand-plan.md"
    parsed = parse_breakdown(path.read_text(), str(path))
    assert rows(parsed) == [
        (14, "create-faces-table-schema", "database-specialist", None, None),
        (
            16,
            "implement-v1-faces-handler",
            "go-fiber-specialist",
            None,
            ["create-faces-table-schema"],
        ),
        (20, "write-handler-tests", "go-testing-specialist", None, ["implement-v1-faces-handler"]),
        (
            23,
            "review-face-matching-thresholds",
            "face-recognition-architect",
            None,
            ["implement-v1-faces-handler", "write-handler-tests"],
        ),
    ]
    assert parsed.data["gates"] == [
        {"name": "gofmt -l .", "run": "gofmt -l .", "expect": "empty_output"},
        {"name": "go vet ./...", "run": "go vet ./..."},
        {"name": "golangci-lint run", "run": "golangci-lint run"},
        {"name": "go test -race ./...", "run": "go test -race ./..."},
        {"name": "go build ./...", "run": "go build ./..."},
    ]
    assert parsed.data["handoff"] == {"github": {"repo": "acme/faces", "issue": 42}}
    assert issues(parsed) == [
        (
            "warning",
            34,
            "not a gate (no `command` in backticks): 'No TODO/FIXME without issue reference'",
        ),
        (
            "warning",
            44,
            "2 checkbox items under 'Success Metrics' are not tasks: criteria and checklist "
            "sections hold no tasks",
        ),
    ]
    reg = registry(
        "database-specialist",
        "go-fiber-specialist",
        "go-testing-specialist",
        "face-recognition-architect",
    )
    result = validate_plan_file(path, registry=reg)
    assert result.errors == [], located(result)
    assert result.plan is not None
    assert result.plan.gates[0].expect == "empty_output"


def test_architect_implementation_tasks_with_numbered_items() -> None:
    """implementation.md: numbered checkbox items, `@dev` specialists, `files:` lists."""
    path = FIXTURES / "implementation.md"
    parsed = parse_breakdown(path.read_text(), str(path))
    assert rows(parsed) == [
        (7, "task-1", "dev", None, None),
        (10, "task-2", "dev", None, ["task-1"]),
        (14, "task-3", "dev", None, ["task-2"]),
    ]
    tasks = parsed.data["tasks"]
    assert tasks[0]["files"] == ["src/services/auth.ts", "src/services/auth.test.ts"]
    assert tasks[0]["prompt"].startswith("Follow TDD: failing tests first")
    assert tasks[2]["files"] == ["src/routes/auth.ts", "src/services/tokens.ts"]
    assert parsed.lines[("tasks", 2, "files", 1)] == 18
    assert tasks[2]["gates"] == [
        {
            "name": "coverage",
            "run": 'npm test -- --coverage --coverageThreshold=\'{"global":{"lines":80}}\'',
        }
    ]
    assert parsed.issues == []
    result = validate_plan_file(path, registry=registry("dev"), repository_override=FIXTURES)
    # task-2 and task-3 both own src/routes/auth.ts, but task-3 comes after task-2: no clash.
    assert result.problems == [], located(result)


def test_agent_layered_tasks_with_spec_kit_ids() -> None:
    """The multi-agent layered-tasks.md: "T001 @claude ..." ids, [P] tags, sub-headings
    inside layers, an HTML comment with an example task, trailing checklists."""
    path = FIXTURES / "agent-layered-tasks.md"
    parsed = parse_breakdown(path.read_text(), str(path))
    assert rows(parsed) == [
        (24, "t002", "claude", "Layer 1", None),
        (27, "t003", "codex", "Layer 1", None),
        (38, "t010", "claude", "Layer 2", None),
        (39, "t011", "codex", "Layer 2", None),
        (40, "t012", "copilot", "Layer 2", None),
        (48, "t020", "qwen", "Layer 3", ["t011"]),
        (50, "t021", "claude", "Layer 3", None),
    ]
    assert parsed.data["tasks"][1]["title"] == "Write scripts/docs/scan.sh"
    assert parsed.ticked == ["t001"]
    # It names no repository: `coord run ... --repo .` gives one.
    result = validate_plan_file(
        path, registry=registry("claude", "codex", "copilot", "qwen"), repository_override=FIXTURES
    )
    assert result.errors == [], located(result)
    assert result.summary is not None
    assert result.summary.critical_path == ["t002", "t011", "t020"]


# --- the grammar ----------------------------------------------------------------------------


def test_task_ids_written_or_generated() -> None:
    parsed = parse(
        """
        # Ids
        - [ ] T1: Written with a colon
        - [ ] `schema`: Written in backticks
        - [ ] Task 12: Written as a task number
        - [ ] T013 Spec-kit style, no colon
        - [ ] Fix: a colon after a word is part of the title
        - [ ] Generated from the title
        - [ ] Generated from the title
        - [ ] Coord-internal sounding title
        - [ ] !!!
        - [ ] T1.2: Dotted
        """
    )
    assert [(t["id"], t["title"]) for t in parsed.data["tasks"]] == [
        ("t1", "Written with a colon"),
        ("schema", "Written in backticks"),
        ("task-12", "Written as a task number"),
        ("t013", "Spec-kit style, no colon"),
        (
            "fix-a-colon-after-a-word-is-part-of-the-title",
            "Fix: a colon after a word is part of the title",
        ),
        ("generated-from-the-title", "Generated from the title"),
        ("generated-from-the-title-2", "Generated from the title"),
        ("task-coord-internal-sounding-title", "Coord-internal sounding title"),
        ("task", "!!!"),
        ("t1.2", "Dotted"),
    ]


def test_generated_ids_do_not_change_when_tasks_are_ticked() -> None:
    text = """
        # Stable
        - [{a}] Same title
        - [ ] Same title
        - [ ] `same-title-3`: explicit, taken first
        - [ ] Same title
        """
    before = parse(text.format(a=" "))
    after = parse(text.format(a="x"))
    assert [t.id for t in before.tasks] == [
        "same-title",
        "same-title-2",
        "same-title-3",
        "same-title-4",
    ]
    assert [t.id for t in after.tasks] == [t.id for t in before.tasks]
    assert after.ticked == ["same-title"]
    assert [t["id"] for t in after.data["tasks"]] == [
        "same-title-2",
        "same-title-3",
        "same-title-4",
    ]


def test_specialists_in_parentheses_at_sign_or_detail_line() -> None:
    parsed = parse(
        """
        # Specialists
        - [ ] T1: Trailing parentheses (database-specialist)
        - [ ] T2: @dev Leading at-sign
        - [ ] T3: Detail line
          specialist: test-developer
        - [ ] T4: Parentheses that are words stay in the title (not a name)
        - [ ] T5: Two of them (implementer)
          agent: fixer
        """
    )
    assert [(t["id"], t.get("specialist"), t["title"]) for t in parsed.data["tasks"]] == [
        ("t1", "database-specialist", "Trailing parentheses"),
        ("t2", "dev", "Leading at-sign"),
        ("t3", "test-developer", "Detail line"),
        ("t4", None, "Parentheses that are words stay in the title (not a name)"),
        ("t5", "implementer", "Two of them"),
    ]
    assert parsed.lines[("tasks", 2, "specialist")] == 5
    assert issues(parsed) == [
        (
            "error",
            8,
            "a second specialist 'fixer' for this task (already 'implementer', line 7)",
        )
    ]


def test_detail_line_forms() -> None:
    parsed = parse(
        """
        # Details
        ## L0: Base
        - [ ] T0: Base (implementer)
        - [ ] T1: Other base (implementer)
        ## L1: Top
        - [ ] T2: Bold and bulleted (implementer)
          - **Depends on:** T0 and T1
          - **Files**: `src/a.py`, src/b.py
        - [ ] T3: Lists below the key (implementer)
          depends on:
            - T0
          files:
          - src/c.py
          - src/d.py
          gates:
          - `make test`
          - lint: `ruff check .`
          - `gofmt -l .` (empty output)
          - {name: slow, run: "make e2e", timeout: 900}
        - [ ] T4: Opts out of the layer rule (implementer)
          depends on: none
        - [ ] T5: Depends on a whole layer (implementer)
          depends on: L0
        """
    )
    tasks = {t["id"]: t for t in parsed.data["tasks"]}
    assert tasks["t2"]["depends_on"] == ["t0", "t1"]
    assert tasks["t2"]["files"] == ["src/a.py", "src/b.py"]
    assert tasks["t3"]["depends_on"] == ["t0"]
    assert tasks["t3"]["files"] == ["src/c.py", "src/d.py"]
    assert tasks["t3"]["gates"] == [
        {"name": "make test", "run": "make test"},
        {"name": "lint", "run": "ruff check ."},
        {"name": "gofmt -l .", "run": "gofmt -l .", "expect": "empty_output"},
        {"name": "slow", "run": "make e2e", "timeout": 900},
    ]
    assert [parsed.lines[("tasks", 3, "gates", j)] for j in range(4)] == [16, 17, 18, 19]
    assert tasks["t4"]["depends_on"] == []
    assert tasks["t5"]["depends_on"] == ["t0", "t1"]
    assert "prompt" not in tasks["t2"] and "prompt" not in tasks["t3"]
    assert parsed.issues == []


def test_the_prompt_is_the_rest_of_the_item() -> None:
    parsed = parse(
        """
        # Prompts
        - [ ] T1: Text (implementer)
          files: a.py

          Create `a.py` with a main function.
            Keep this indentation.
          <!-- a note for readers, not for the specialist -->
          - [ ] a nested checkbox is part of the prompt, not a task
        - [ ] T2: A code block alone is the command (shell)
          ```sh
          cat > a.txt <<'EOF'
            indented
          EOF
          ```
        - [ ] T3: Text and code keep the fences (implementer)
          Run this:
          ```
          make
          ```
        """
    )
    tasks = parsed.data["tasks"]
    assert [t["id"] for t in tasks] == ["t1", "t2", "t3"]
    assert tasks[0]["prompt"] == (
        "Create `a.py` with a main function.\n  Keep this indentation.\n"
        "- [ ] a nested checkbox is part of the prompt, not a task"
    )
    assert parsed.lines[("tasks", 0, "prompt")] == 5
    assert tasks[1]["prompt"] == "cat > a.txt <<'EOF'\n  indented\nEOF\n"
    assert tasks[2]["prompt"] == "Run this:\n```\nmake\n```"


def test_what_is_not_a_task() -> None:
    parsed = parse(
        """
        ---
        title: front matter is skipped
        ---
        # Not tasks

        ```markdown
        ## L0: a heading in a code block
        - [ ] T8: a checkbox in a code block
        ```

        <!--
        - [ ] T9: a checkbox in a comment
        -->

        - [ ] T1: The one task (implementer)
        - plain bullets are not tasks

        ## Definition of Done
        - [ ] reviewed
        """
    )
    assert [t["id"] for t in parsed.data["tasks"]] == ["t1"]
    assert parsed.title == "Not tasks"
    assert issues(parsed) == [
        (
            "warning",
            19,
            "1 checkbox item under 'Definition of Done' is not a task: criteria and "
            "checklist sections hold no tasks",
        )
    ]


def test_gate_sections() -> None:
    parsed = parse(
        """
        # Gates
        ## L0: Build
        - [ ] T1: Build (implementer)
        ### Quality gates
        - [ ] `make smoke` runs after every layer, as it sits under one
        ## L1: Quality gates
        - [ ] T2: A layer named for gates is still a layer (implementer)
        ## System gates
        - [x] `make test` (ticked or not, a gate always runs)
        - [ ] format: `gofmt -l .` prints nothing
        - [P] a tag, not a checkbox, and not a gate either
        """
    )
    assert [(t["id"], t["layer"]) for t in parsed.data["tasks"]] == [("t1", "L0"), ("t2", "L1")]
    assert parsed.data["layer_gates"] == [{"name": "make smoke", "run": "make smoke"}]
    assert parsed.data["gates"] == [
        {"name": "make test", "run": "make test"},
        {"name": "format", "run": "gofmt -l .", "expect": "empty_output"},
    ]
    assert (parsed.lines[("layer_gates", 0)], parsed.lines[("gates", 1)]) == (5, 10)
    assert parsed.issues == []


def test_in_a_breakdown_with_layers_only_items_under_them_are_tasks() -> None:
    parsed = parse(
        """
        # Layers
        - [ ] Before any layer
        ## L0: Base
        - [ ] T1: Base (implementer)
        ### Notes inside the layer
        - [ ] T2: Still in L0 (implementer)
        ## Open questions
        - [ ] Which database?
        - [ ] Which cloud?
        """
    )
    assert rows(parsed) == [
        (4, "t1", "implementer", "L0", None),
        (6, "t2", "implementer", "L0", None),
    ]
    assert issues(parsed) == [
        (
            "warning",
            2,
            "1 checkbox item above the first section is not a task: in a breakdown with "
            "layers, tasks go under a layer heading",
        ),
        (
            "warning",
            8,
            "2 checkbox items under 'Open questions' are not tasks: in a breakdown with "
            "layers, tasks go under a layer heading",
        ),
    ]


def test_streams_with_ticked_tasks_keep_their_order() -> None:
    parsed = parse(
        """
        # Streams
        ## Stream A: First
        - [ ] A1: One (implementer)
        - [x] A2: Two, done (implementer)
        - [ ] A3: Three (implementer)
        ## Stream B: Second
        depends on: Stream A
        - [x] B1: Done (implementer)
        - [ ] B2: After stream A, as B1 is done (implementer)
          depends on: A2
        """
    )
    assert rows(parsed) == [
        (3, "a1", "implementer", "Stream A", []),
        (5, "a3", "implementer", "Stream A", ["a1"]),  # A2 is done: A3 follows A1
        (9, "b2", "implementer", "Stream B", ["a3"]),  # depending on a done task is met
    ]


def test_layer_headings_and_group_dependencies() -> None:
    parsed = parse(
        """
        # Phases
        ## Phase 1: Setup
        - [ ] P1: Setup (implementer)
        ## Phase 2: Build
        - [ ] P2: Build (implementer)
        ## Layer 3: Ship
        depends on: Phase 1
        - [ ] P3: Ship (implementer)
        - [ ] P4: Ship with its own (implementer)
          depends on: P2
        """
    )
    assert rows(parsed) == [
        (3, "p1", "implementer", "Phase 1", None),
        (5, "p2", "implementer", "Phase 2", None),
        (8, "p3", "implementer", "Layer 3", ["p1"]),
        (9, "p4", "implementer", "Layer 3", ["p2"]),
    ]
    assert parsed.lines[("tasks", 2, "depends_on")] == 7
    assert parsed.lines[("tasks", 2, "layer")] == 6


def test_crlf_line_endings_keep_line_numbers() -> None:
    text = "# CRLF\r\n\r\n## L0: Base\r\n- [ ] T1: One (implementer)\r\n  files: a.py\r\n"
    parsed = parse_breakdown(text, "issue.md")
    assert parsed.data["tasks"] == [
        {"id": "t1", "title": "One", "specialist": "implementer", "layer": "L0", "files": ["a.py"]}
    ]
    assert parsed.checkbox_lines == {"t1": 4}
    assert parsed.lines[("tasks", 0, "files", 0)] == 5


def test_settings_block_defaults_and_name() -> None:
    text = """
        # Faces: a new endpoint!

        ```yaml
        base_branch: develop
        max_parallel: 3
        ```

        - [ ] T1: One (implementer)
        """
    parsed = parse(text)
    assert parsed.data["name"] == "faces-a-new-endpoint"
    assert parsed.lines[("name",)] == 1
    assert parsed.lines[("max_parallel",)] == 5
    # Defaults fill what the breakdown leaves out; the title still names the plan.
    defaults = {"name": "issue-7", "repository": "https://example.com/a.git", "max_parallel": 9}
    with_defaults = parse(text, defaults=defaults)
    assert with_defaults.data["name"] == "faces-a-new-endpoint"
    assert with_defaults.data["repository"] == "https://example.com/a.git"
    assert with_defaults.data["max_parallel"] == 3
    untitled = parse("- [ ] T1: One (implementer)\n", defaults=defaults)
    assert untitled.data["name"] == "issue-7"
    named = parse("# Title\n```yaml\nname: given\n```\n- [ ] T1: One (implementer)\n")
    assert named.data["name"] == "given"


def test_validate_breakdown_for_text_that_is_not_a_file(tmp_path: Path) -> None:
    """What `coord run --from-issue` calls: the body of an issue, with defaults."""
    body = "## Tasks\r\n- [x] T1: Done (implementer)\r\n- [ ] T2: Next (implementer)\r\n"
    parsed, result = validate_breakdown(
        body,
        source="acme/app#12",
        base_dir=tmp_path,
        defaults={"name": "issue-12", "repository": "https://github.com/acme/app.git"},
        registry=registry(),
    )
    assert result.errors == [], located(result)
    assert result.plan is not None
    assert result.plan.name == "issue-12"
    assert [t.id for t in result.plan.tasks] == ["t2"]
    assert parsed.checkbox_lines == {"t1": 2, "t2": 3}
    assert located(result) == ["warning: acme/app#12:2: 1 ticked `- [x]` task left out as done: t1"]


# --- located errors -------------------------------------------------------------------------


BROKEN = """
# Broken plan

```yaml
repository: .
max_parallel: [
```

## L0: Base

- [ ] T1: Create schema (implementer)
  files:
- [ ]
- [ ] T1: Again (implementer)
  depends on: T9
- [~] T2: In progress
- [ ] T3: Gated (implementer)
  gates: `unterminated
  specialist: two names
  gates: {name: x, run: [
- [x] T3: Done twice

## Stream A: Mixed
- [ ] T4: Streamed (implementer)
  ```sh
  never closed
"""


def test_every_problem_at_once_located_by_markdown_line(tmp_path: Path) -> None:
    path = tmp_path / "breakdown.md"
    path.write_text(md(BROKEN))
    result = validate_plan_file(path, registry=registry())
    assert result.plan is None
    assert located(result) == [
        # The YAML block did not parse, so the plan has no repository either.
        f"error: {path}:3: repository: field required: the plan names no repository to work "
        "on; give one with `--repo PATH`, a `repository:` setting, or put the plan in a git "
        "repository (`coord run` then uses that one)",
        f"error: {path}:6:1: YAML block: invalid YAML: while parsing a flow node, expected "
        "the node content, but found '<stream end>'",
        f"error: {path}:11: `files:` lists nothing: write the values after the colon, or as "
        "indented `- ` items below it",
        f"error: {path}:12: tasks[1].title: must not be empty",
        f"error: {path}:13: tasks[2].id: duplicate task id 't1' (first used by tasks[0], line 10)",
        f"error: {path}:14: tasks[2].depends_on[0]: unknown task 't9'",
        f"error: {path}:17: unmatched backtick in '`unterminated': put each gate command in `...`",
        f"error: {path}:18: `specialist:` must name one specialist (letters, digits, '-', '_', "
        "'.'), got 'two names'",
        f"error: {path}:19: gate '{{name: x, run: [' is not a valid {{name: .., run: ..}} "
        "mapping: expected the node content, but found '<stream end>'",
        f"error: {path}:20: duplicate task id 't3' (first used on line 16)",
        f"warning: {path}:20: 1 ticked `- [x]` task left out as done: t3",
        f"error: {path}:22: 'Stream A' is a stream, but this breakdown has layers (line 8); "
        "use layers (each after the one before) or streams (in parallel), not both",
        f"error: {path}:24: this ``` block is never closed: it would swallow the rest of the task",
    ]


def test_no_tasks_says_why(tmp_path: Path) -> None:
    def problems(text: str) -> list[str]:
        path = tmp_path / "plan.md"
        path.write_text(md(text))
        return [str(p) for p in validate_plan_file(path, registry=registry()).problems]

    settings_block = "```yaml\nrepository: .\n```\n"
    assert problems(f"# Nothing\n{settings_block}Prose only.\n") == [
        f"{tmp_path / 'plan.md'}:1: tasks: the plan has no tasks (write each task as a "
        "checkbox item: `- [ ] T1: Title`)"
    ]
    # All ticked: nothing left to do, which is not a problem.
    assert problems(f"# Done\n{settings_block}- [x] T1: A\n- [-] T2: B\n") == []
    done = validate_plan_file(tmp_path / "plan.md", registry=registry())
    assert done.ok and done.nothing_to_do and done.plan is not None and done.plan.tasks == []
    assert problems(f"# Aside\n{settings_block}- [ ] Aside\n## L0: Empty\n") == [
        f"{tmp_path / 'plan.md'}:1: tasks: the plan has no tasks (no checkbox item is under "
        "a heading that holds tasks: see the warnings)",
        f"{tmp_path / 'plan.md'}:5: 1 checkbox item above the first section is not a task: "
        "in a breakdown with layers, tasks go under a layer heading",
    ]


def test_tasks_in_the_yaml_block_are_refused() -> None:
    parsed = parse(
        """
        # Tasks twice
        ```yaml
        repository: .
        tasks:
          - {id: a, title: A}
        ```
        - [ ] T1: One (implementer)
        """
    )
    assert [t["id"] for t in parsed.data["tasks"]] == ["t1"]
    assert issues(parsed) == [
        ("error", 4, "tasks are written as `- [ ]` items in the Markdown, not in the YAML block")
    ]
    second = parse("# Two\n```yaml\nrepository: .\n```\n```yml\nbase_branch: x\n```\n- [ ] A\n")
    assert issues(second) == [
        (
            "error",
            5,
            "a second YAML settings block (the first is on line 2); merge them, or indent an "
            "example under a task to make it part of its prompt",
        )
    ]
    not_a_mapping = parse("# List\n```yaml\n- a\n```\n- [ ] A\n")
    assert issues(not_a_mapping) == [
        (
            "error",
            3,
            "the YAML block must be a mapping of plan settings (repository:, base_branch:, "
            "gates:, ...)",
        )
    ]


# --- files, paths and the CLI ---------------------------------------------------------------


def test_relative_paths_resolve_against_the_markdown_folder(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "agents").mkdir()
    notes = tmp_path / "notes" / "topic"
    notes.mkdir(parents=True)
    plan_file = notes / "breakdown.md"
    plan_file.write_text(
        "# Topic\n```yaml\nrepository: ../../repo\nspecialists_dir: ../../agents\n```\n"
        "- [ ] T1: One (implementer)\n"
    )
    result = validate_plan_file(plan_file)
    assert result.errors == [], located(result)
    assert result.plan is not None
    request = build_execution_input(result.plan, plan_file)
    assert Path(request.repository).resolve() == (tmp_path / "repo").resolve()
    assert request.plan_dir == str(notes)


def test_a_breakdown_without_repository_runs_on_the_repo_option(tmp_path: Path) -> None:
    plan_file = tmp_path / "breakdown.md"
    plan_file.write_text("# Agent output\n## L0: Base\n- [ ] T1: One (implementer)\n")
    without = validate_plan_file(plan_file)
    assert [str(p) for p in without.errors] == [
        f"{plan_file}:1: repository: field required: the plan names no repository to work on; "
        "give one with `--repo PATH`, a `repository:` setting, or put the plan in a git "
        "repository (`coord run` then uses that one)"
    ]
    result = validate_plan_file(plan_file, repository_override=tmp_path)
    assert result.errors == [], located(result)
    assert result.plan is not None and result.plan.repository == str(tmp_path)


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("validate")(validate_command)

    @app.command("other")
    def other() -> None:  # a second command keeps "validate" a subcommand, as in coord
        pass

    return app


def test_coord_validate_a_markdown_plan(tmp_path: Path, cli: typer.Typer) -> None:
    good = tmp_path / "good.md"
    good.write_text(
        "# Good\n```yaml\nrepository: .\n```\n## L0: A\n- [ ] T1: One (implementer)\n"
        "## L1: B\n- [ ] T2: Two (test-developer)\n"
    )
    result = CliRunner().invoke(cli, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "read as a Markdown breakdown (layers, streams or a task list)\n"
        "plan 'good' is valid: 2 tasks, at most 4 at a time\n"
    )
    assert "  L0: t1\n  L1: t2\n" in result.stdout

    bad = tmp_path / "bad.md"
    bad.write_text(
        "# Bad\n```yaml\nrepository: .\n```\n- [ ] T1: One (implementer)\n  depends on: T2\n"
    )
    result = CliRunner().invoke(cli, ["validate", str(bad)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {bad}:6: tasks[0].depends_on[0]: unknown task 't2'\n1 error, 0 warnings\n"
    )


def test_the_hello_service_breakdown_is_the_yaml_plan() -> None:
    yaml_result = validate_plan_file(EXAMPLES / "hello-service" / "plan.yaml")
    md_result = validate_plan_file(EXAMPLES / "hello-service" / "breakdown.md")
    assert md_result.problems == [], located(md_result)
    assert yaml_result.plan is not None and md_result.plan is not None
    # The same plan; the Markdown one also knows its file, to tick finished tasks back.
    assert md_result.plan.model_dump(exclude={"source"}) == yaml_result.plan.model_dump(
        exclude={"source"}
    )
    assert md_result.plan.source is not None and set(md_result.plan.source.tasks) == {
        task.id for task in md_result.plan.tasks
    }
    assert md_result.summary == yaml_result.summary


# --- a YAML plan and its Markdown rendering are the same plan -------------------------------


def render_gate(gate: dict[str, Any]) -> str:
    plain = set(gate) <= {"name", "run", "expect"}
    if plain and gate.get("expect", "exit_zero") == "exit_zero":
        return (
            f"`{gate['run']}`"
            if gate["name"] == gate["run"]
            else f"{gate['name']}: `{gate['run']}`"
        )
    if plain and gate["name"] == gate["run"]:
        return f"`{gate['run']}` returns empty"
    return json.dumps(gate)


def render(plan: dict[str, Any]) -> str:
    """The Markdown breakdown of a plan (in the subset the generator below writes)."""
    settings = {k: v for k, v in plan.items() if k not in ("tasks", "gates", "layer_gates")}
    out = [f"# Plan {plan['name']}", "", "```yaml", yaml.safe_dump(settings).strip(), "```", ""]
    layer = None
    for task in plan["tasks"]:
        if task.get("layer") != layer:
            layer = task["layer"]
            out += ["", f"## {layer}: Layer {layer}", ""]
        head = f"- [ ] `{task['id']}`: {task['title']}"
        if task.get("specialist"):
            head += f" ({task['specialist']})"
        out.append(head)
        deps = task.get("depends_on")
        if deps is not None:
            out.append(f"  depends on: {', '.join(deps) if deps else 'none'}")
        if task.get("files"):
            out.append(f"  files: {', '.join(task['files'])}")
        if task.get("gates"):
            out.append("  gates:")
            out += [f"  - {render_gate(gate)}" for gate in task["gates"]]
        prompt = task.get("prompt", "")
        if prompt:
            out.append("")  # ends a list of gates: the prompt may start with a list
        if "\n" in prompt:
            out += [
                "  ```text",
                *(f"  {line}" if line else "" for line in prompt.splitlines()),
                "  ```",
            ]
        elif prompt:
            out.append(f"  {prompt}")
    for level, heading in (("gates", "Quality gates"), ("layer_gates", "Layer gates")):
        if plan.get(level):
            out += ["", f"## {heading}", ""]
            out += [f"- [ ] {render_gate(gate)}" for gate in plan[level]]
    return "\n".join(out) + "\n"


WORDS = st.sampled_from(
    ["add", "the", "schema", "API", "tests", "v2", "user's", "src/a.py", "x.y", "Faces", "-", "a,b"]
)
TEXT = st.lists(WORDS, min_size=1, max_size=5).map(" ".join)
IDS = st.from_regex(r"[a-z][a-z0-9_-]{0,8}[a-z0-9]", fullmatch=True).filter(
    lambda s: s not in {"none", "nothing", "no"} and not s.startswith("coord-")
)
COMMANDS = st.sampled_from(["pytest -q", "make lint", "test -f a.txt", "echo 'a, b'", "gofmt -l ."])
GATES = st.builds(
    lambda run, name, expect, timeout: {
        "name": name or run,
        "run": run,
        **({"expect": expect} if expect else {}),
        **({"timeout": timeout} if timeout else {}),
    },
    COMMANDS,
    st.one_of(st.none(), st.sampled_from(["lint", "unit tests", "smoke"])),
    st.one_of(st.none(), st.sampled_from(["exit_zero", "empty_output"])),
    st.one_of(st.none(), st.integers(1, 3600)),
)
PROMPTS = st.one_of(
    st.just(""),
    TEXT,
    st.lists(st.one_of(TEXT, st.just(""), TEXT.map(lambda t: "    " + t)), min_size=2, max_size=4)
    .map(lambda lines: "\n".join(lines).strip("\n") + "\n")
    .filter(lambda p: "\n" in p.strip()),
)


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(IDS, min_size=1, max_size=8, unique=True))
    layered = draw(st.booleans())
    layers = sorted(draw(st.lists(st.integers(0, 3), min_size=len(ids), max_size=len(ids))))
    tasks = []
    for k, task_id in enumerate(ids):
        task: dict[str, Any] = {"id": task_id, "title": draw(TEXT)}
        if specialist := draw(st.sampled_from([None, "implementer", "shell", "test-developer"])):
            task["specialist"] = specialist
        if prompt := draw(PROMPTS):
            task["prompt"] = prompt
        if layered:
            task["layer"] = f"L{layers[k]}"
        deps = draw(
            st.one_of(
                st.none(), st.lists(st.sampled_from(ids[:k] or ["x"]), max_size=3, unique=True)
            )
        )
        if deps is not None:
            task["depends_on"] = [d for d in deps if d in ids[:k]]
        if files := draw(
            st.lists(st.sampled_from(["a.py", "src/b.py", "docs/c.md"]), max_size=2, unique=True)
        ):
            task["files"] = files
        if gates := draw(st.lists(GATES, max_size=2)):
            task["gates"] = gates
        tasks.append(task)
    plan: dict[str, Any] = {"name": draw(IDS), "repository": ".", "tasks": tasks}
    plan["max_parallel"] = draw(st.integers(1, 8))
    if gates := draw(st.lists(GATES, max_size=3)):
        plan["gates"] = gates
    if layered and (layer_gates := draw(st.lists(GATES, max_size=2))):
        plan["layer_gates"] = layer_gates
    return plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_a_yaml_plan_and_its_markdown_rendering_are_the_same_plan(plan: dict[str, Any]) -> None:
    base_dir = FIXTURES  # `repository: .` exists there
    reg = registry()
    loaded = load_plan_text(yaml.safe_dump(plan, sort_keys=False), source="plan.yaml")
    assert loaded.data is not None
    from_yaml = validate_plan_data(
        loaded.data, source="plan.yaml", lines=loaded.lines, base_dir=base_dir, registry=reg
    )
    text = render(plan)
    parsed, from_md = validate_breakdown(text, source="plan.md", base_dir=base_dir, registry=reg)
    assert parsed.issues == [], text
    assert from_yaml.plan is not None and from_md.plan is not None, located(from_md)
    assert from_md.plan.model_dump(exclude={"source"}) == from_yaml.plan.model_dump(
        exclude={"source"}
    ), text
    # The same problems (file ownership, routing), each at a line of its own file.
    assert [(p.severity, p.path, p.message) for p in from_md.problems] == [
        (p.severity, p.path, p.message) for p in from_yaml.problems
    ]
    assert from_md.summary == from_yaml.summary
    for k in range(len(plan["tasks"])):
        assert parsed.lines[("tasks", k)] == parsed.checkbox_lines[plan["tasks"][k]["id"]]


def test_the_documented_example_is_what_the_docs_say(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "docs" / "plans.md").read_text()
    start = readme.index("````markdown\n") + len("````markdown\n")
    example = readme[start : readme.index("````\n", start)]
    (tmp_path / "repo").mkdir()
    path = tmp_path / "breakdown.md"
    path.write_text(example)
    reg = registry("database-specialist", "go-fiber-specialist", "go-testing-specialist")
    result = validate_plan_file(path, registry=reg)
    assert result.errors == [], located(result)
    plan = result.plan
    assert plan is not None and plan.name == "add-faces-endpoint"
    assert [(t.id, t.layer, t.depends_on) for t in plan.tasks] == [
        ("t1", "L0", None),
        ("t2", "L1", ["t1"]),
        ("t3", "L1", None),
    ]
    assert [(g.name, g.expect) for g in plan.gates] == [
        ("tests", "exit_zero"),
        ("gofmt -l .", "empty_output"),
        ("go vet ./...", "exit_zero"),
    ]
    assert [(g.name, g.run) for g in plan.tasks[0].gates] == [
        ("go test ./db/...", "go test ./db/..."),
        ("lint", "golangci-lint run ./db/..."),
    ]
    assert result.summary is not None and result.summary.waves == [["t1"], ["t2", "t3"]]


MARKDOWN_LINES = st.sampled_from(
    [
        "# Title",
        "## L0: A",
        "## Stream B: B",
        "### Quality gates",
        "## Criteria",
        "- [ ] T1: One (implementer)",
        "- [x] Two",
        "- [~] three",
        "1. [ ]",
        "  depends on: T1, L0, none",
        "  depends on:",
        "  files:",
        "  - a.py",
        "  gates: `x` `",
        "  gates: {name: [",
        "  specialist: a b",
        "  ```sh",
        "```yaml",
        "repository: .",
        "tasks: []",
        "```",
        "<!-- c",
        "-->",
        "---",
        "depends on: Stream B",
        "",
        "\t\t- [ ] tabbed",
        "  text",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(MARKDOWN_LINES, max_size=25))
def test_any_markdown_gives_located_problems_not_exceptions(lines: list[str]) -> None:
    text = "\n".join(lines)
    parsed, result = validate_breakdown(text, source="x.md", base_dir=FIXTURES, registry=registry())
    total = len(lines) + 1
    assert all(i.line is None or 1 <= i.line <= total for i in parsed.issues)
    assert all(p.line is None or 1 <= p.line <= total for p in result.problems)
    assert all(1 <= line <= total for line in parsed.checkbox_lines.values())
