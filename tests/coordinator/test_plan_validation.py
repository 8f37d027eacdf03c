"""Plan validation: every rule, with its message and its location (path and line)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.validate import validate_command
from coordinator.loader import load_plan_text
from coordinator.plan import Plan, Task
from coordinator.specialists import Specialist, SpecialistRegistry
from coordinator.validation import (
    Problem,
    ValidationResult,
    format_problems,
    format_summary,
    validate_plan,
    validate_plan_data,
    validate_plan_file,
)

Located = tuple[str, str, int | None, str]


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def located(result: ValidationResult) -> list[Located]:
    return [(p.severity, p.path, p.line, p.message) for p in result.problems]


def check(
    tmp_path: Path, text: str, *, registry: SpecialistRegistry | None = None
) -> ValidationResult:
    return validate_plan_file(write(tmp_path, text), registry=registry)


def make_registry(*specialists: tuple[str, str]) -> SpecialistRegistry:
    return SpecialistRegistry(
        Specialist(name=name, description=description, source=f"test:{name}")
        for name, description in specialists
    )


GOOD = """
name: demo
repository: .
max_parallel: 2
tasks:
  - id: schema
    title: Design the schema
    specialist: implementer
    layer: data
    files: [db/schema.sql]
  - id: seed
    title: Seed data
    specialist: implementer
    layer: data
  - id: api
    title: Build the API
    specialist: implementer
    layer: service
    files: [src/api.py]
  - id: api-tests
    title: Test the API
    specialist: test-developer
    layer: service
    depends_on: []
  - id: review
    title: Review everything
    specialist: code-reviewer
    depends_on: [api, api-tests]
"""


# --- a valid plan ------------------------------------------------------------------------------


def test_valid_plan_has_a_summary(tmp_path: Path) -> None:
    result = check(tmp_path, GOOD)
    assert located(result) == []
    assert result.ok
    assert result.plan is not None and result.plan.name == "demo"
    assert result.routes == {
        "schema": "implementer",
        "seed": "implementer",
        "api": "implementer",
        "api-tests": "test-developer",
        "review": "code-reviewer",
    }
    summary = result.summary
    assert summary is not None
    assert summary.task_count == 5
    assert [(layer.name, layer.tasks) for layer in summary.layers] == [
        ("data", ["schema", "seed"]),
        ("service", ["api", "api-tests"]),
    ]
    # api waits for the whole data layer; api-tests opted out with `depends_on: []`.
    # At most 2 at a time: api-tests is third in plan order among the first ready tasks.
    assert summary.waves == [["schema", "seed"], ["api", "api-tests"], ["review"]]
    assert summary.critical_path == ["schema", "api", "review"]
    assert summary.critical_path_length == 3
    assert format_summary(result) == textwrap.dedent(
        """\
        plan 'demo' is valid: 5 tasks, at most 2 at a time
        layers:
          data: schema, seed
          service: api, api-tests
        schedule (3 waves; a wave's tasks run together):
          1. schema (implementer), seed (implementer)
          2. api (implementer), api-tests (test-developer)
          3. review (code-reviewer)
        critical path: 3 tasks (schema then api then review)"""
    )
    assert format_problems(result) == ""


def test_json_plan_has_lines_even_with_tab_indentation(tmp_path: Path) -> None:
    text = '{\n\t"name": "demo",\n\t"repository": ".",\n\t"tasks": [\n\t\t{"id": "a",'
    text += ' "title": "A", "specialist": "implementer", "depends_on": ["b"]}\n\t]\n}\n'
    result = validate_plan_file(write(tmp_path, text, "plan.json"))
    assert located(result) == [("error", "tasks[0].depends_on[0]", 5, "unknown task 'b'")]


def test_json_duplicate_keys_and_null(tmp_path: Path) -> None:
    path = write(tmp_path, '{"name": "a",\n "name": "b"}', "plan.json")
    (duplicate,) = [p for p in validate_plan_file(path).problems if p.path == "name"]
    assert (duplicate.path, duplicate.line, duplicate.column, duplicate.message) == (
        "name",
        2,
        2,
        "duplicate key 'name' (first defined on line 1)",
    )
    null = validate_plan_file(write(tmp_path, "null\n", "null.json"))
    assert located(null) == [("error", "", None, "the plan is empty")]


def test_json_numbers_follow_json_not_yaml(tmp_path: Path) -> None:
    # YAML 1.1 reads 1e2 as a string; the JSON reader must see the number 100 (too big).
    path = write(tmp_path, '{"name": "demo", "repository": ".", "max_parallel": 1e2}', "p.json")
    assert located(validate_plan_file(path)) == [
        ("error", "max_parallel", 1, "must be at most 64, got 100.0"),
        ("error", "tasks", 1, "the plan has no tasks"),
    ]


# --- reading the file --------------------------------------------------------------------------


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        tasks:
          - id: a
            title: "unclosed
        """,
    )
    assert [(p.line, p.column, p.message) for p in result.problems] == [
        (
            6,
            1,
            "invalid YAML: while scanning a quoted scalar (line 5), found unexpected end of stream",
        )
    ]
    assert str(result.problems[0]) == (
        f"{tmp_path / 'plan.yaml'}:6:1: invalid YAML: while scanning a quoted scalar "
        "(line 5), found unexpected end of stream"
    )
    assert result.plan is None and not result.ok


def test_json_syntax_error_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "name": "demo",\n  "tasks": [,]\n}\n', "plan.json")
    result = validate_plan_file(path)
    assert [(p.line, p.column, p.message) for p in result.problems] == [
        (3, 13, "invalid JSON: Expecting value")
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    result = validate_plan_file(write(tmp_path, text))
    assert located(result) == [("error", "", None, "the plan is empty")]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    result = check(tmp_path, "- id: a\n- id: b\n")
    assert located(result) == [
        (
            "error",
            "",
            1,
            "the plan must be a mapping of settings (name:, repository:, tasks:), not a list",
        )
    ]


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        tasks:
          - id: a
            title: First
            specialist: implementer
            title: Second
        name: other
        """,
    )
    assert located(result) == [
        ("error", "tasks[0].title", 7, "duplicate key 'title' (first defined on line 5)"),
        ("error", "name", 8, "duplicate key 'name' (first defined on line 1)"),
    ]
    assert result.problems[0].column == 5


def test_unreadable_inputs_are_one_clear_problem(tmp_path: Path) -> None:
    missing = validate_plan_file(tmp_path / "nope.yaml")
    assert [p.message for p in missing.problems] == [
        f"cannot read the plan: {tmp_path / 'nope.yaml'} does not exist"
    ]
    # A folder is read for the plan it holds (see the context tests); this one holds none.
    folder = validate_plan_file(tmp_path)
    assert [(p.file, p.message) for p in folder.problems] == [
        (
            str(tmp_path),
            "no plan in this folder: expected one of plan.yaml, plan.yml, plan.json, breakdown.md, "
            "tasks.md, tasks.json, tasks/tasks.json",
        )
    ]
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    assert [p.message for p in validate_plan_file(garbage).problems] == [
        "cannot read the plan: not UTF-8 text (bad byte at offset 0)"
    ]
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"name: demo\x00\n")
    (problem,) = validate_plan_file(nul).problems
    assert (problem.line, problem.message) == (
        1,
        "invalid YAML: unacceptable character #x0000: special characters are not allowed",
    )


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("tasks: " + "[" * 5000 + "]" * 5000 + "\n", "the plan is nested too deeply", None),
        ("name: 2024-13-45\n", "cannot parse the plan: month must be in 1..12", None),
        (
            "name: !!python/object:os.system x\n",
            "invalid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:os.system'",
            1,
        ),
        (
            "name: a\n---\nname: b\n",
            "invalid YAML: expected a single document in the stream (line 1), "
            "but found another document",
            2,
        ),
        ("name: x\n  bad: indent\n", "invalid YAML: mapping values are not allowed here", 2),
    ],
)
def test_odd_yaml_is_a_problem_not_an_exception(
    tmp_path: Path, text: str, message: str, line: int | None
) -> None:
    result = validate_plan_file(write(tmp_path, text))
    assert [(p.line, p.message) for p in result.problems] == [(line, message)]


def test_unknown_extension_is_read_as_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nrepository: .\ntasks: []\n", "plan.txt")
    assert located(validate_plan_file(path)) == [("error", "tasks", 3, "the plan has no tasks")]


def test_recursive_yaml_aliases_do_not_hang(tmp_path: Path) -> None:
    result = check(tmp_path, "name: demo\nrepository: .\ntasks: &t [*t]\n")
    assert located(result) == [
        ("error", "tasks[0]", 3, "must be a mapping (key: value), got a list")
    ]


# --- shape of fields (pydantic) ----------------------------------------------------------------


def test_unknown_fields_suggest_the_closest_name(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        max_paralel: 3
        tasks:
          - id: a
            title: A
            specialist: implementer
            dependson: []
            colour: blue
        """,
    )
    assert located(result) == [
        ("error", "max_paralel", 3, "unknown field 'max_paralel' (did you mean 'max_parallel'?)"),
        (
            "error",
            "tasks[0].dependson",
            8,
            "unknown field 'dependson' (did you mean 'depends_on'?)",
        ),
        (
            "error",
            "tasks[0].colour",
            9,
            "unknown field 'colour'; known fields: id, title, specialist, prompt, layer, "
            "depends_on, files, gates, max_cost, max_tokens",
        ),
    ]


def test_missing_required_fields(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        repository: .
        tasks:
          - id: a
            specialist: implementer
          - title: No id
            specialist: implementer
        """,
    )
    assert located(result) == [
        ("error", "name", 1, "field required"),
        ("error", "tasks[0].title", 3, "field required"),
        ("error", "tasks[1].id", 5, "field required"),
    ]


def test_wrong_types_and_values_all_reported(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: Demo Plan
        repository: .
        max_parallel: 0
        strict_files: maybe
        approval:
          before_start: 3
        handoff:
          github: {repo: not-a-repo, issue: -2}
        tasks:
          - id: 42
            title: ""
            specialist: implementer
            files: src/a.py
            gates:
              - name: lint
                run: "   "
                expect: success
                timeout: -5
              - just a string
        """,
    )
    assert located(result) == [
        (
            "error",
            "name",
            1,
            "must be lowercase letters, digits, '.', '_' or '-', starting with a letter or "
            "digit, got 'Demo Plan'",
        ),
        ("error", "max_parallel", 3, "must be at least 1, got 0"),
        ("error", "strict_files", 4, "must be true or false, got 'maybe'"),
        ("error", "approval.before_start", 6, "must be true or false, got 3"),
        ("error", "handoff.github.repo", 8, "must look like 'owner/name', got 'not-a-repo'"),
        ("error", "handoff.github.issue", 8, "must be a positive integer, got -2"),
        ("error", "tasks[0].id", 10, "must be a string, got 42 (put it in quotes)"),
        ("error", "tasks[0].title", 11, "must not be empty"),
        ("error", "tasks[0].files", 13, "must be a list, got 'src/a.py'"),
        ("error", "tasks[0].gates[0].run", 16, "the gate's command (`run`) must not be empty"),
        (
            "error",
            "tasks[0].gates[0].expect",
            17,
            "must be 'exit_zero' or 'empty_output', got 'success'",
        ),
        ("error", "tasks[0].gates[0].timeout", 18, "must be a positive integer, got -5"),
        ("error", "tasks[0].gates[1]", 19, "must be a mapping (key: value), got 'just a string'"),
    ]


def test_gate_with_empty_command(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        gates:
          - name: tests
            run: ""
        tasks:
          - {id: a, title: A, specialist: implementer}
        """,
    )
    assert located(result) == [
        ("error", "gates[0].run", 5, "the gate's command (`run`) must not be empty")
    ]


# --- dependencies ------------------------------------------------------------------------------


def test_duplicate_task_ids(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        tasks:
          - {id: a, title: A, specialist: implementer}
          - {id: b, title: B, specialist: implementer}
          - id: a
            title: A again
            specialist: implementer
        """,
    )
    assert located(result) == [
        ("error", "tasks[2].id", 6, "duplicate task id 'a' (first used by tasks[0], line 4)")
    ]


def test_unknown_dependency_with_suggestion(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        tasks:
          - {id: backend-api, title: API, specialist: implementer}
          - id: ui
            title: UI
            specialist: implementer
            depends_on:
              - backend-ap
              - zzz
        """,
    )
    assert located(result) == [
        (
            "error",
            "tasks[1].depends_on[0]",
            9,
            "unknown task 'backend-ap' (did you mean 'backend-api'?)",
        ),
        ("error", "tasks[1].depends_on[1]", 10, "unknown task 'zzz'"),
    ]


def test_self_dependency_and_repeated_dependency(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        tasks:
          - {id: a, title: A, specialist: implementer}
          - {id: b, title: B, specialist: implementer, depends_on: [a, b, a]}
        """,
    )
    assert located(result) == [
        ("error", "tasks[1].depends_on[1]", 5, "task 'b' depends on itself"),
        ("warning", "tasks[1].depends_on[2]", 5, "'a' is listed twice"),
    ]


def test_cycles_are_named_once_each(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        tasks:
          - id: a
            title: A
            specialist: implementer
            depends_on: [c]
          - {id: b, title: B, specialist: implementer, depends_on: [a]}
          - {id: c, title: C, specialist: implementer, depends_on: [b]}
          - {id: d, title: D, specialist: implementer, depends_on: [e]}
          - {id: e, title: E, specialist: implementer, depends_on: [d]}
        """,
    )
    assert located(result) == [
        (
            "error",
            "tasks[0].depends_on[0]",
            7,
            "dependency cycle: a -> c -> b -> a (each task depends on the next)",
        ),
        (
            "error",
            "tasks[3].depends_on[0]",
            10,
            "dependency cycle: d -> e -> d (each task depends on the next)",
        ),
    ]
    assert result.summary is None


def test_cycle_through_the_layer_rule_points_at_the_explicit_edge(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        tasks:
          - {id: a, title: A, specialist: implementer, layer: one, depends_on: [b]}
          - {id: b, title: B, specialist: implementer, layer: two}
        """,
    )
    assert located(result) == [
        (
            "error",
            "tasks[0].depends_on[0]",
            4,
            "dependency cycle: a -> b -> a (each task depends on the next)",
        )
    ]


def test_semantic_rules_run_when_fields_are_malformed(tmp_path: Path) -> None:
    """A typo in one task must not hide a cycle, a duplicate or an unknown dependency."""
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        max_parallel: lots
        tasks:
          - id: a
            title: A
            specialist: implementer
            depends_on: [b]
            dependson: [x]
          - id: b
            titel: B
            specialist: implementer
            depends_on: [a, ghost]
          - id: a
            title: Again
            specialist: implementr
        """,
    )
    assert located(result) == [
        ("error", "max_parallel", 3, "must be an integer, got 'lots'"),
        (
            "error",
            "tasks[0].depends_on[0]",
            8,
            "dependency cycle: a -> b -> a (each task depends on the next)",
        ),
        (
            "error",
            "tasks[0].dependson",
            9,
            "unknown field 'dependson' (did you mean 'depends_on'?)",
        ),
        ("error", "tasks[1].title", 10, "field required"),
        ("error", "tasks[1].titel", 11, "unknown field 'titel' (did you mean 'title'?)"),
        ("error", "tasks[1].depends_on[1]", 13, "unknown task 'ghost'"),
        ("error", "tasks[2].id", 14, "duplicate task id 'a' (first used by tasks[0], line 5)"),
        (
            "error",
            "tasks[2].specialist",
            16,
            "unknown specialist 'implementr' (did you mean 'implementer'?)",
        ),
    ]
    assert result.plan is None


def test_empty_plan(tmp_path: Path) -> None:
    result = check(tmp_path, "name: demo\nrepository: .\ntasks: []\n")
    assert located(result) == [("error", "tasks", 3, "the plan has no tasks")]
    no_key = check(tmp_path, "name: demo\nrepository: .\n")
    assert located(no_key) == [("error", "tasks", 1, "the plan has no tasks")]
    # `tasks` of the wrong type is its own error, not also "no tasks".
    wrong = check(tmp_path, "name: demo\nrepository: .\ntasks: lots\n")
    assert located(wrong) == [("error", "tasks", 3, "must be a list, got 'lots'")]


# --- specialists -------------------------------------------------------------------------------


def test_unknown_specialist_suggests_or_lists_names(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        tasks:
          - {id: a, title: A, specialist: implementor}
          - {id: b, title: B, specialist: wizard}
        """,
        registry=make_registry(("implementer", "Builds features"), ("fixer", "Fixes failures")),
    )
    assert located(result) == [
        (
            "error",
            "tasks[0].specialist",
            4,
            "unknown specialist 'implementor' (did you mean 'implementer'?)",
        ),
        (
            "error",
            "tasks[1].specialist",
            5,
            "unknown specialist 'wizard' (known specialists: fixer, implementer)",
        ),
    ]


def test_routing_and_unroutable_tasks(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        tasks:
          - id: docs
            title: Write documentation pages
          - id: mystery
            title: Ponder
            prompt: Think about it.
        """,
        registry=make_registry(
            ("doc-writer", "Writes documentation pages and guides"),
            ("fixer", "Fixes failing gates"),
        ),
    )
    assert located(result) == [
        (
            "error",
            "tasks[1]",
            6,
            "no specialist matches task 'mystery'; set `specialist:` (known: doc-writer, fixer)",
        ),
    ]
    assert result.routes == {"docs": "doc-writer"}


def test_builtin_specialists_are_known(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        tasks:
          - {id: a, title: A, specialist: implementer}
          - {id: b, title: B, specialist: test-developer}
          - {id: c, title: C, specialist: fixer}
          - {id: d, title: D, specialist: code-reviewer}
          - {id: e, title: E, specialist: shell}
        """,
    )
    assert located(result) == []


def test_specialists_dir_adds_specialists_and_its_warnings(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "poet.md").write_text(
        "---\nname: poet\ndescription: Writes poems\nmood: wistful\n---\nYou write poems.\n"
    )
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        specialists_dir: agents
        tasks:
          - {id: a, title: A sonnet, specialist: poet}
        """,
    )
    assert [(p.severity, p.file, p.line, p.message) for p in result.problems] == [
        ("warning", str(agents / "poet.md"), 4, "unknown key 'mood' is kept but not used by coord")
    ]
    assert result.ok and result.routes == {"a": "poet"}


def test_broken_specialist_definitions_warn_and_are_skipped(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "broken.md").write_text("name: broken\n")
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        specialists_dir: agents
        tasks:
          - {id: a, title: A, specialist: broken}
        """,
    )
    assert [(p.severity, p.file, p.line, p.message) for p in result.problems] == [
        (
            "error",
            str(tmp_path / "plan.yaml"),
            5,
            "unknown specialist 'broken' (known specialists: code-reviewer, fixer, implementer, "
            "shell, test-developer; some definitions could not be loaded, see the warnings)",
        ),
        (
            "warning",
            str(agents / "broken.md"),
            1,
            "no front matter: a specialist file starts with a '---' line, then YAML with at "
            "least 'name' and 'description', then another '---' line (definition skipped)",
        ),
    ]


def test_specialists_dir_must_exist(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        specialists_dir: agents
        tasks:
          - {id: a, title: A, specialist: implementer}
        """,
    )
    assert located(result) == [
        (
            "error",
            "specialists_dir",
            3,
            f"specialists_dir 'agents' does not exist ({tmp_path / 'agents'})",
        )
    ]


def test_repository_agents_are_loaded(tmp_path: Path) -> None:
    agents = tmp_path / "repo" / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "dba.md").write_text("---\nname: dba\ndescription: Databases\n---\nYou tune.\n")
    plan = "name: demo\nrepository: repo\ntasks:\n  - {id: a, title: A, specialist: dba}\n"
    assert located(check(tmp_path, plan)) == []


# --- files -------------------------------------------------------------------------------------

FILES = """
name: demo
repository: .
strict_files: {strict}
tasks:
  - {{id: a, title: A, specialist: implementer, files: [src/app.py, README.md]}}
  - {{id: b, title: B, specialist: implementer, files: [./src/app.py]}}
  - {{id: c, title: C, specialist: implementer, files: [src/app.py], depends_on: [a, b]}}
  - {{id: d, title: D, specialist: implementer, files: [README.md]}}
"""


def test_parallel_tasks_owning_a_file_warn(tmp_path: Path) -> None:
    result = check(tmp_path, FILES.format(strict="false"))
    # c depends on both a and b, so it does not clash with them.
    assert located(result) == [
        (
            "warning",
            "tasks[1].files[0]",
            6,
            "file './src/app.py' is also owned by task 'a', "
            "which may run at the same time as 'b'; make one depend on the other (strict_files: "
            "true makes this an error)",
        ),
        (
            "warning",
            "tasks[3].files[0]",
            8,
            "file 'README.md' is also owned by task 'a', which "
            "may run at the same time as 'd'; make one depend on the other (strict_files: true "
            "makes this an error)",
        ),
    ]
    assert result.ok and result.summary is not None


def test_parallel_tasks_owning_a_file_with_strict_files_fail(tmp_path: Path) -> None:
    result = check(tmp_path, FILES.format(strict="true"))
    assert [(p.severity, p.path, p.line) for p in result.problems] == [
        ("error", "tasks[1].files[0]", 6),
        ("error", "tasks[3].files[0]", 8),
    ]
    assert result.problems[0].message == (
        "file './src/app.py' is also owned by task 'a', which may run at the same time as 'b'; "
        "make one depend on the other"
    )
    assert result.summary is None


# --- repository --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/app.git",
        "git@github.com:acme/app.git",
        "ssh://git@example.com/app.git",
        "file:///srv/git/app.git",
    ],
)
def test_repository_urls_are_accepted(tmp_path: Path, url: str) -> None:
    plan = f"name: demo\nrepository: '{url}'\ntasks:\n  - {{id: a, title: A, specialist: fixer}}\n"
    assert located(check(tmp_path, plan)) == []


def test_local_repository_relative_to_the_plan(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    (tmp_path / "plain").mkdir()
    git_repo = tmp_path / "git-repo"
    subprocess.run(["git", "init", "-q", str(git_repo)], check=True)
    (tmp_path / "a-file").write_text("x")
    task = "tasks:\n  - {id: a, title: A, specialist: fixer}\n"
    for repository in ("../plain", "../git-repo", str(git_repo)):
        path = write(plans, f"name: demo\nrepository: {repository}\n{task}")
        assert located(validate_plan_file(path)) == []
    missing = validate_plan_file(write(plans, f"name: demo\nrepository: ../gone\n{task}"))
    assert located(missing) == [
        (
            "error",
            "repository",
            2,
            f"repository '../gone' does not exist (looked at {plans / '..' / 'gone'}); give a "
            "local folder or a URL (https://, ssh://, git@host:, file://)",
        )
    ]
    a_file = validate_plan_file(write(plans, f"name: demo\nrepository: ../a-file\n{task}"))
    assert [p.message.split(" (")[0] for p in a_file.problems] == [
        "repository '../a-file' is not a folder"
    ]


def test_repository_override(tmp_path: Path) -> None:
    path = write(
        tmp_path, "name: demo\nrepository: gone\ntasks:\n  - {id: a, title: A, specialist: fixer}\n"
    )
    assert located(validate_plan_file(path, repository_override=tmp_path)) == []
    result = validate_plan_file(path, repository_override=tmp_path / "nope")
    assert located(result) == [
        ("error", "", None, f"repository override '{tmp_path / 'nope'}' does not exist")
    ]


# --- other entry points ------------------------------------------------------------------------


def test_validate_plan_on_a_parsed_plan_has_no_lines(tmp_path: Path) -> None:
    plan = Plan(
        name="demo",
        repository=str(tmp_path),
        tasks=[
            Task(id="a", title="A", specialist="implementer", depends_on=["b"]),
            Task(id="b", title="B", specialist="implementer", depends_on=["a"]),
        ],
    )
    result = validate_plan(plan, base_dir=tmp_path, source="stored-plan")
    assert located(result) == [
        (
            "error",
            "tasks[0].depends_on[0]",
            None,
            "dependency cycle: a -> b -> a (each task depends on the next)",
        )
    ]
    assert str(result.problems[0]) == (
        "stored-plan: tasks[0].depends_on[0]: dependency cycle: a -> b -> a "
        "(each task depends on the next)"
    )
    assert result.plan is plan


def test_validate_plan_data_uses_the_given_lines(tmp_path: Path) -> None:
    data = {
        "name": "demo",
        "repository": ".",
        "tasks": [{"id": "a", "title": "A", "specialist": "implementer", "depends_on": ["x"]}],
    }
    lines = {("tasks", 0): 40, ("tasks", 0, "depends_on"): 44}
    result = validate_plan_data(data, source="PLAN.md", lines=lines, base_dir=tmp_path)
    assert [str(p) for p in result.problems] == [
        "PLAN.md:44: tasks[0].depends_on[0]: unknown task 'x'"
    ]
    not_a_mapping = validate_plan_data([], source="PLAN.md", lines={}, base_dir=tmp_path)
    assert [p.message for p in not_a_mapping.problems] == [
        "the plan must be a mapping of settings (name:, repository:, tasks:)"
    ]


def test_loader_lines_follow_the_last_of_duplicate_keys() -> None:
    loaded = load_plan_text("tasks: [1]\ntasks:\n  - 2\n", source="x")
    assert loaded.data == {"tasks": [2]}
    assert loaded.lines[("tasks", 0)] == 3


def test_problem_str_and_format_problems(tmp_path: Path) -> None:
    problem = Problem(
        severity="error",
        message="unknown task 'foo'",
        path="tasks[3].depends_on[0]",
        file="plan.yaml",
        line=12,
    )
    assert str(problem) == "plan.yaml:12: tasks[3].depends_on[0]: unknown task 'foo'"
    whole = Problem(severity="warning", message="odd", path="", file="plan.yaml", line=None)
    assert str(whole) == "plan.yaml: odd"
    result = ValidationResult(plan=None, problems=[problem, whole], routes={}, summary=None)
    assert format_problems(result) == (
        "error: plan.yaml:12: tasks[3].depends_on[0]: unknown task 'foo'\n"
        "warning: plan.yaml: odd\n"
        "1 error, 1 warning"
    )
    assert [p.message for p in result.errors] == ["unknown task 'foo'"]
    assert [p.message for p in result.warnings] == ["odd"]
    assert not result.ok


# --- the CLI command ---------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("validate")(validate_command)

    @app.command("other")
    def other() -> None:  # a second command keeps "validate" a subcommand, as in coord
        pass

    return app


def test_cli_valid_plan(tmp_path: Path, cli: typer.Typer) -> None:
    path = write(tmp_path, GOOD)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("plan 'demo' is valid: 5 tasks, at most 2 at a time\n")
    assert "  2. api (implementer), api-tests (test-developer)\n" in result.stdout
    assert "critical path: 3 tasks (schema then api then review)" in result.stdout
    assert result.stderr == ""


def test_cli_warnings_go_to_stderr_and_still_pass(tmp_path: Path, cli: typer.Typer) -> None:
    path = write(tmp_path, FILES.format(strict="false"))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0].startswith(f"warning: {path}:6: tasks[1].files[0]: ")
    assert result.stderr.splitlines()[-1] == "0 errors, 2 warnings"


def test_cli_errors(tmp_path: Path, cli: typer.Typer) -> None:
    path = write(
        tmp_path,
        "name: demo\nrepository: .\ntasks:\n  - {id: a, title: A, "
        "specialist: fixer, depends_on: [b]}\n",
    )
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {path}:4: tasks[0].depends_on[0]: unknown task 'b'\n1 error, 0 warnings\n"
    )


def test_cli_json(tmp_path: Path, cli: typer.Typer) -> None:
    good = CliRunner().invoke(cli, ["validate", "--json", str(write(tmp_path, GOOD))])
    assert good.exit_code == 0
    payload = json.loads(good.stdout)
    assert payload["summary"]["critical_path_length"] == 3
    assert payload["routes"]["review"] == "code-reviewer"
    assert payload["problems"] == []
    bad = CliRunner().invoke(cli, ["validate", "--json", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 2
    assert json.loads(bad.stdout)["problems"][0]["message"].endswith("does not exist")


def test_cli_bad_inputs_are_one_line(tmp_path: Path, cli: typer.Typer) -> None:
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(bytes(range(256)))
    cases = {
        tmp_path / "missing.yaml": f"cannot read the plan: {tmp_path / 'missing.yaml'} does not "
        "exist",
        tmp_path: "no plan in this folder: expected one of plan.yaml, plan.yml, plan.json, "
        "breakdown.md, tasks.md, tasks.json, tasks/tasks.json",
        garbage: "cannot read the plan: not UTF-8 text (bad byte at offset 128)",
    }
    for path, message in cases.items():
        result = CliRunner().invoke(cli, ["validate", str(path)])
        assert result.exit_code == 2
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert result.stderr == f"error: {path}: {message}\n1 error, 0 warnings\n"


def test_cli_repo_override(tmp_path: Path, cli: typer.Typer) -> None:
    path = write(
        tmp_path, "name: demo\nrepository: gone\ntasks:\n  - {id: a, title: A, specialist: fixer}\n"
    )
    assert CliRunner().invoke(cli, ["validate", str(path)]).exit_code == 2
    result = CliRunner().invoke(cli, ["validate", str(path), "--repo", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_names_that_git_refuses_in_branches_are_located(tmp_path: Path) -> None:
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        branch: "feature x"
        base_branch: main..old
        tasks:
          - {id: a..b, title: A, specialist: implementer}
          - {id: x.lock, title: X, specialist: implementer}
        """,
    )
    assert [(p.path, p.line, p.message.split(" ")[0]) for p in result.errors] == [
        ("branch", 3, "'feature"),
        ("base_branch", 4, "'main..old'"),
        ("tasks[0].id", 6, "'a..b'"),
        ("tasks[1].id", 7, "'x.lock'"),
    ]
    assert "is not a valid git branch name" in result.errors[0].message
    assert "cannot be part of a git branch name" in result.errors[2].message


# --- setup, env, context, status file ------------------------------------------------------

ENV_PLAN = """
name: demo
repository: .
setup:
  - {name: deps, run: "pip install -r requirements.txt", timeout: 900}
  - {name: deps, run: "true"}
  - {name: gen, run: ""}
setup_per_worktree: true
env:
  PORT: 8080
  GREETING: hello
  DEPLOY_TOKEN: abc
  ANTHROPIC_BASE_URL: http://x
  PATH: /opt/bin
  COORD_TASK_ID: x
  DB: "postgres://app:hunter2@db/app"
env_from: [OPENAI_API_KEY, GREETING, "1x"]
status_file: ../status.json
tasks:
  - {id: a, title: A, specialist: implementer}
"""


def test_setup_env_and_status_file_rules_are_located(tmp_path: Path) -> None:
    result = check(tmp_path, ENV_PLAN)
    assert located(result) == [
        (
            "error",
            "setup[1].name",
            5,
            "duplicate setup command name 'deps' (first used by setup[0], line 4)",
        ),
        ("error", "setup[2].run", 6, "must not be empty"),
        (
            "error",
            "env.DEPLOY_TOKEN",
            11,
            "'DEPLOY_TOKEN' looks like a secret, and the plan travels in workflow history: set "
            "it in the worker's environment and list it under env_from: [DEPLOY_TOKEN]",
        ),
        (
            "error",
            "env.ANTHROPIC_BASE_URL",
            12,
            "'ANTHROPIC_BASE_URL' looks like a secret, and the plan travels in workflow history: "
            "set it in the worker's environment and list it under env_from: [ANTHROPIC_BASE_URL]",
        ),
        (
            "error",
            "env.PATH",
            13,
            "'PATH' is composed by the coordinator: the setup commands install into "
            "$COORD_ENV_DIR, whose bin/ comes first on PATH",
        ),
        (
            "error",
            "env.COORD_TASK_ID",
            14,
            "'COORD_TASK_ID': variables starting with COORD_ are the coordinator's own",
        ),
        (
            "warning",
            "env.DB",
            15,
            "the value looks like a URL with a password, and the plan travels in workflow "
            "history: pass it from the worker's environment with env_from",
        ),
        ("error", "env_from[1]", 16, "'GREETING' is set by env as well: keep one of the two"),
        (
            "error",
            "env_from[2]",
            16,
            "'1x' is not an environment variable name (letters, digits, '_')",
        ),
        (
            "error",
            "status_file",
            17,
            "status_file '../status.json' must stay inside the workspace (no '..'), or be absolute",
        ),
    ]


def test_env_values_and_new_fields_parse(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# notes\n")
    result = check(
        tmp_path,
        """
        name: demo
        repository: .
        setup: [{name: deps, run: "make deps"}]
        env: {PORT: 8080, RATIO: 0.5, NAME: x}
        env_from: [OPENAI_API_KEY]
        context: [notes.md]
        status_file: true
        tasks:
          - {id: a, title: A, specialist: implementer}
        """,
    )
    assert result.ok, located(result)
    plan = result.plan
    assert plan is not None
    assert plan.env == {"PORT": "8080", "RATIO": "0.5", "NAME": "x"}
    assert (plan.setup[0].timeout, plan.setup_per_worktree) == (1800, False)
    assert (plan.env_from, plan.context, plan.status_file) == (
        ["OPENAI_API_KEY"],
        ["notes.md"],
        True,
    )
    assert "setup (the workspace): deps" in format_summary(result)
    assert "context documents: notes.md" in format_summary(result)
    without = check(
        tmp_path,
        "name: d\nrepository: .\nsetup_per_worktree: true\ntasks: "
        "[{id: a, title: A, specialist: implementer}]\n",
    )
    assert located(without) == [
        ("warning", "setup_per_worktree", 3, "setup_per_worktree has no effect without setup")
    ]


def test_context_documents_missing_empty_or_folders_are_located(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "plan.md").write_text("# the plan\n")
    (tmp_path / "research.md").write_text("# research\n")
    (tmp_path / "empty.md").write_text("  \n\n")
    (tmp_path / "folder").mkdir()
    result = check(
        tmp_path,
        """
        name: demo
        repository: ./repo
        context:
          - research.md        # beside the plan
          - docs/plan.md       # in the repository
          - missing.md
          - empty.md
          - folder
          - ./research.md
        tasks:
          - {id: a, title: A, specialist: implementer}
        """,
    )
    assert [(p.severity, p.file, p.line, p.path, p.message) for p in result.problems] == [
        (
            "error",
            str(tmp_path / "plan.yaml"),
            6,
            "context[2]",
            f"context document 'missing.md' not found beside the plan ({tmp_path / 'missing.md'})"
            f" or in the repository ({tmp_path / 'repo' / 'missing.md'})",
        ),
        (
            "error",
            str(tmp_path / "plan.yaml"),
            7,
            "context[3]",
            f"context document 'empty.md' is empty ({tmp_path / 'empty.md'})",
        ),
        (
            "error",
            str(tmp_path / "plan.yaml"),
            8,
            "context[4]",
            f"context document 'folder' is a folder ({tmp_path / 'folder'}); list its files",
        ),
        (
            "warning",
            str(tmp_path / "plan.yaml"),
            9,
            "context[5]",
            "'./research.md' is listed twice",
        ),
    ]
    # Reported the same way when another field does not parse.
    broken = check(
        tmp_path,
        "name: demo\nrepository: ./repo\nmax_parallel: x\ncontext: [gone.md]\n"
        "tasks: [{id: a, title: A, specialist: implementer}]\n",
    )
    assert [(p.path, p.line) for p in broken.errors] == [("max_parallel", 3), ("context[0]", 4)]


def test_a_folder_holds_the_plan_and_its_documents_by_convention(
    tmp_path: Path, cli: typer.Typer
) -> None:
    (tmp_path / "repo").mkdir()
    plan_text = """
        name: demo
        repository: ./repo
        context: [research.md]
        tasks:
          - {id: a, title: A, specialist: implementer}
        """
    write(tmp_path, plan_text)
    (tmp_path / "research.md").write_text("# research\n")
    (tmp_path / "goal.md").write_text("# goal\n")
    (tmp_path / "requirements.md").write_text("# requirements\n")
    (tmp_path / "notes.md").write_text("# not by convention\n")
    result = validate_plan_file(tmp_path)
    assert result.ok, located(result)
    assert result.plan is not None and result.plan_file == str(tmp_path / "plan.yaml")
    # Listed ones first, then the conventional names present; none twice.
    assert result.plan.context == ["research.md", "goal.md", "requirements.md"]

    (tmp_path / "plan.md").write_text("\n")  # an empty document found by its name
    result = validate_plan_file(tmp_path)
    assert [(p.file, p.line, p.message) for p in result.errors] == [
        (
            str(tmp_path / "plan.md"),
            None,
            f"context document 'plan.md' is empty ({tmp_path / 'plan.md'}) (a context "
            "document by its name, beside the plan)",
        )
    ]
    cli_result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert cli_result.exit_code == 2
    assert f"error: {tmp_path / 'plan.md'}: context document 'plan.md' is empty" in (
        cli_result.stderr
    )

    (tmp_path / "plan.md").unlink()
    write(tmp_path, plan_text, name="plan.json")
    two = validate_plan_file(tmp_path)
    assert [p.message for p in two.errors] == [
        "the folder holds plan.yaml and plan.json: name the plan file to run"
    ]


def test_a_folder_with_only_a_breakdown_reads_it_as_the_plan(tmp_path: Path) -> None:
    (tmp_path / "breakdown.md").write_text("name: demo\nrepository: .\ntasks: []\n")
    result = validate_plan_file(tmp_path)
    # Read by the same loader as `coord run breakdown.md` (the Markdown format comes with
    # coordinator/breakdown.py); here the file is simply the one picked.
    assert result.plan_file == str(tmp_path / "breakdown.md")


def test_an_unknown_notify_format_is_located(tmp_path: Path) -> None:
    plan = """
        name: demo
        repository: .
        notify:
          webhook: https://chat.example/hooks/abc
          format: teams
        tasks:
          - {id: a, title: A, specialist: shell, prompt: "true"}
        """
    result = validate_plan_file(write(tmp_path, plan))
    assert located(result) == [
        ("error", "notify.format", 5, "must be 'json' or 'slack', got 'teams'"),
    ]
    slack = validate_plan_file(write(tmp_path, plan.replace("teams", "slack")))
    assert slack.ok and slack.plan is not None and slack.plan.notify.format == "slack"
