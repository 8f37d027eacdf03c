"""Specialist definitions: parsing, the built-ins, registry precedence and routing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from coordinator.specialists import (
    BUILTIN_DIR,
    Specialist,
    SpecialistError,
    SpecialistRegistry,
    load_registry,
    load_specialist_file,
    parse_specialist,
)

BUILTIN_NAMES = ["code-reviewer", "fixer", "implementer", "shell", "test-developer"]
ENGINE_VARIABLES = [
    "COORD_TASK_ID",
    "COORD_TASK_TITLE",
    "COORD_TASK_PROMPT",
    "COORD_ATTEMPT",
    "COORD_FEEDBACK",
    "COORD_GUIDANCE",
    "COORD_WORKSPACE",
]


def parse(text: str, source: str = "agents/x.md") -> tuple[Specialist, list[str]]:
    return parse_specialist(text, source=source)


def errors_of(text: str, source: str = "agents/x.md") -> list[str]:
    with pytest.raises(SpecialistError) as caught:
        parse_specialist(text, source=source)
    assert str(caught.value) == "\n".join(caught.value.messages)
    return caught.value.messages


def write_agent(directory: Path, name: str, description: str, body: str = "Body.") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.md"
    path.write_text(f"---\nname: {name}\ndescription: {description}\n---\n{body}\n")
    return path


# --- the built-ins ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_parses_cleanly(name: str) -> None:
    path = BUILTIN_DIR / f"{name}.md"
    specialist, warnings = load_specialist_file(path)
    assert warnings == []
    assert specialist.name == name  # the registry's "builtin:<name>" relies on it
    assert specialist.description
    assert len(specialist.prompt) > 400, "a real prompt, not a placeholder"
    assert not specialist.prompt.startswith("\n")


def test_builtin_registry_has_no_problems() -> None:
    registry = load_registry()
    assert registry.names() == BUILTIN_NAMES
    assert registry.errors == []
    assert registry.warnings == []
    for specialist in registry.all():
        assert specialist.source == f"builtin:{specialist.name}"


def test_builtin_claude_specialists() -> None:
    registry = load_registry()
    for name in ["implementer", "test-developer", "fixer", "code-reviewer"]:
        specialist = registry.get(name)
        assert specialist is not None
        assert specialist.backend == "claude"
        assert specialist.model == "sonnet"
        assert specialist.command is None
    reviewer = registry.get("code-reviewer")
    assert reviewer is not None
    assert reviewer.tools == ["Read", "Grep", "Glob"]  # read-only
    assert "changes_requested" in reviewer.prompt and "approve" in reviewer.prompt
    implementer = registry.get("implementer")
    assert implementer is not None
    assert {"Write", "Edit", "Bash"} <= set(implementer.tools)
    fixer = registry.get("fixer")
    assert fixer is not None
    assert "never" in fixer.description.lower()


def test_builtin_shell_runs_the_prompt() -> None:
    shell = load_registry().get("shell")
    assert shell is not None
    assert shell.backend == "command"
    assert shell.command == 'sh -c "$COORD_TASK_PROMPT"'
    for variable in ENGINE_VARIABLES:
        assert variable in shell.prompt


# --- parsing ---------------------------------------------------------------------------------


def test_minimal_definition_defaults() -> None:
    specialist, warnings = parse("---\nname: docs\ndescription: Writes docs.\n---\nBe brief.\n")
    assert warnings == []
    assert specialist == Specialist(
        name="docs",
        description="Writes docs.",
        tools=[],
        model=None,
        backend="claude",
        command=None,
        max_turns=None,
        timeout=None,
        prompt="Be brief.",
        source="agents/x.md",
        extra={},
    )


def test_specialist_is_frozen() -> None:
    specialist, _ = parse("---\nname: docs\ndescription: Writes docs.\n---\nBe brief.\n")
    with pytest.raises(ValidationError):
        specialist.name = "other"  # type: ignore[misc]


def test_tools_as_comma_string_or_list() -> None:
    from_string, _ = parse("---\nname: a\ndescription: d\ntools: Read, Grep ,Glob,\n---\nx")
    from_list, _ = parse(
        "---\nname: a\ndescription: d\ntools:\n  - Read\n  - Grep\n  - Glob\n---\nx"
    )
    flow_list, _ = parse("---\nname: a\ndescription: d\ntools: [Read, Grep, Glob]\n---\nx")
    assert from_string.tools == from_list.tools == flow_list.tools == ["Read", "Grep", "Glob"]


def test_tools_keep_permission_patterns_and_drop_duplicates() -> None:
    text = "---\nname: a\ndescription: d\ntools: Read, Bash(git add:*, git commit:*), Read\n---\nx"
    specialist, _ = parse(text)
    assert specialist.tools == ["Read", "Bash(git add:*, git commit:*)"]


def test_empty_tools_warns() -> None:
    specialist, warnings = parse("---\nname: a\ndescription: d\ntools: []\n---\nx")
    assert specialist.tools == []
    assert len(warnings) == 1
    assert warnings[0].startswith("agents/x.md:4:")
    assert "'tools' is empty" in warnings[0]


def test_own_keys() -> None:
    text = (
        "---\nname: codex\ndescription: Codex CLI.\nbackend: command\n"
        'command: codex exec "$COORD_TASK_PROMPT"\nmax_turns: 30\ntimeout: 900\nmodel: inherit\n'
        "---\n"
    )
    specialist, warnings = parse(text)
    assert warnings == []  # a command agent needs no prompt
    assert specialist.backend == "command"
    assert specialist.command == 'codex exec "$COORD_TASK_PROMPT"'
    assert (specialist.max_turns, specialist.timeout, specialist.model) == (30, 900, "inherit")


def test_unknown_keys_are_kept_with_a_warning() -> None:
    text = (
        "---\nname: a\ndescription: d\ncolor: red\npermissionMode: plan\n"
        "mcp_integrations:\n  - memory: Track state\n---\nx"
    )
    specialist, warnings = parse(text)
    assert specialist.extra == {
        "color": "red",
        "permissionMode": "plan",
        "mcp_integrations": [{"memory": "Track state"}],
    }
    # `color` is a Claude Code display key: kept quietly.
    assert warnings == [
        "agents/x.md:5: unknown key 'permissionMode' is kept but not used by coord",
        "agents/x.md:6: unknown key 'mcp_integrations' is kept but not used by coord",
    ]


def test_other_warnings() -> None:
    text = "---\nname: a\ndescription: d\ndescription: e\ncommand: make\n---\n\n"
    specialist, warnings = parse(text)
    assert specialist.description == "e"
    assert len(warnings) == 3
    assert "agents/x.md:4: key 'description' is repeated" in warnings[0]
    assert "agents/x.md:5: 'command' is ignored" in warnings[1]
    assert "no system prompt" in warnings[2]


def test_prompt_is_the_body() -> None:
    text = "\ufeff---\r\nname: a\r\ndescription: d\r\n---\r\n\r\n# Role\r\n\r\n---\r\nMore.\r\n"
    specialist, _ = parse(text)
    # Only the first '---' closes the front matter; a later one is Markdown.
    assert specialist.prompt == "# Role\n\n---\nMore."


def test_folded_description() -> None:
    text = "---\nname: a\ndescription: >\n  Line one\n  line two.\n---\nx"
    specialist, _ = parse(text)
    assert specialist.description == "Line one line two."


# --- errors ----------------------------------------------------------------------------------


def test_missing_front_matter() -> None:
    (message,) = errors_of("# Just Markdown\n\nname: a\n")
    assert message.startswith("agents/x.md:1: no front matter")


def test_unclosed_front_matter() -> None:
    (message,) = errors_of("---\nname: a\ndescription: d\n")
    assert message.startswith("agents/x.md:1: front matter is not closed")


def test_yaml_error_names_file_and_line() -> None:
    (message,) = errors_of("---\nname: a\ndescription: Use it when: x happens\n---\nx")
    assert message.startswith("agents/x.md:3: invalid YAML in front matter")
    assert "must be quoted" in message
    (message,) = errors_of("---\nname: a\n\tdescription: d\n---\nx")
    assert message.startswith("agents/x.md:3: invalid YAML")


def test_yaml_error_mentions_where_the_construct_started() -> None:
    (message,) = errors_of("---\nname: a\ndescription: d\ntools: [Read, Grep\n---\nx")
    assert message.startswith("agents/x.md:5: invalid YAML")
    assert "at line 4" in message


def test_front_matter_must_be_a_mapping() -> None:
    (message,) = errors_of("---\n- name\n- description\n---\nx")
    assert message == "agents/x.md:2: front matter must be a YAML mapping, not a list"


def test_missing_name_and_description_are_both_reported() -> None:
    messages = errors_of("---\ntools: Read\n---\nx")
    assert messages == [
        "agents/x.md: 'name' is required",
        "agents/x.md: 'description' is required",
    ]
    assert errors_of("---\n---\nx") == messages


def test_command_backend_needs_a_command() -> None:
    (message,) = errors_of("---\nname: a\ndescription: d\nbackend: command\n---\n")
    assert message.startswith("agents/x.md:4: 'backend: command' needs a 'command'")
    (message,) = errors_of("---\nname: a\ndescription: d\nbackend: command\ncommand: ''\n---\n")
    assert message.startswith("agents/x.md:5: 'backend: command' needs a 'command'")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("name: 12", "'name' must be a string, got int"),
        ("name: Has Spaces", "name 'Has Spaces' must be letters"),
        ("tools: 5", "'tools' must be a comma-separated string or a list, got int"),
        ("tools: [Read, 5]", "'tools' entries must be strings, got 5"),
        ("model: [sonnet]", "'model' must be a string, got list"),
        (
            "backend: codex",
            "'backend' must be one of 'claude', 'claude-code', 'command', got 'codex'",
        ),
        ("max_turns: 0", "'max_turns' must be a positive integer, got 0"),
        ("max_turns: yes", "'max_turns' must be a positive integer, got True"),
        ("timeout: 1.5", "'timeout' must be a positive integer, got 1.5"),
        ("timeout: ten", "'timeout' must be a positive integer, got 'ten'"),
    ],
)
def test_wrong_types(line: str, expected: str) -> None:
    key = line.split(":")[0]
    front = f"description: d\n{line}" if key == "name" else f"name: a\ndescription: d\n{line}"
    (message,) = errors_of(f"---\n{front}\n---\nx")
    where = "agents/x.md:3" if key == "name" else "agents/x.md:4"
    assert message.startswith(f"{where}: {expected}")


def test_every_problem_of_a_file_is_reported() -> None:
    messages = errors_of("---\nname: a\nmax_turns: -1\nbackend: command\n---\n")
    assert len(messages) == 3
    assert all(message.startswith("agents/x.md:") for message in messages)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes(b"---\nname: caf\xe9\ndescription: d\n---\n")
    with pytest.raises(SpecialistError, match=r"latin1\.md: cannot read"):
        load_specialist_file(path)


# --- Claude Code agent libraries (the seeds' format) -----------------------------------------

SEED_WITH_INTEGRATIONS = """\
---
name: execution-coordinator
description: EXECUTION ORCHESTRATOR - Coordinates parallel agent execution, manages \
dependencies, tracks progress, aggregates results, and ensures atomic operations. Optimized \
for Go development workflow with quality gates.
tools: Task, TodoWrite, Read, Glob, Grep, Bash
model: sonnet
mcp_integrations:
  - memory: Track execution state and agent results
---

# execution-coordinator

---

## Purpose

The `execution-coordinator` is the **orchestration layer**.
"""

SEED_WITH_COLOR = """\
---
name: execution-coordinator
description: >
  Manages parallel implementation execution based on task breakdowns. This agent
  coordinates multiple implementation agents, tracks progress, manages
  dependencies, and ensures quality gates are met throughout the execution
  process.
model: sonnet
tools: Task, Read, Write, TodoWrite, Grep, Glob, LS, NotebookRead
color: red
---

## Agent Identity

**You are the execution-coordinator agent.**
"""

SEED_INHERIT = """\
---
name: execution-orchestrator
description: Orchestrate layer-by-layer execution with auto-sync
model: inherit
color: purple
---

You are the execution-orchestrator agent for the implementation plugin.
"""


def test_seed_agents_parse_with_warnings_only() -> None:
    first, warnings = parse(SEED_WITH_INTEGRATIONS, source="seeds/000.md")
    assert first.tools == ["Task", "TodoWrite", "Read", "Glob", "Grep", "Bash"]
    assert first.extra == {
        "mcp_integrations": [{"memory": "Track execution state and agent results"}]
    }
    assert warnings == [
        "seeds/000.md:6: unknown key 'mcp_integrations' is kept but not used by coord"
    ]
    assert first.prompt.startswith("# execution-coordinator\n\n---\n")

    second, warnings = parse(SEED_WITH_COLOR, source="seeds/001.md")
    assert warnings == []
    assert second.description.startswith("Manages parallel implementation execution")
    assert second.tools[-1] == "NotebookRead"
    assert second.extra == {"color": "red"}

    third, warnings = parse(SEED_INHERIT, source="seeds/004.md")
    assert warnings == []
    assert (third.model, third.tools) == ("inherit", [])


# --- registry --------------------------------------------------------------------------------


def test_repository_agents_override_builtins(tmp_path: Path) -> None:
    agents = tmp_path / "repo" / ".claude" / "agents"
    path = write_agent(agents, "implementer", "The team's own implementer.")
    write_agent(agents, "go-fiber-specialist", "Builds Fiber HTTP handlers in Go.")
    registry = load_registry(repository=tmp_path / "repo")
    implementer = registry.get("implementer")
    assert implementer is not None
    assert implementer.description == "The team's own implementer."
    assert implementer.source == str(path)
    assert registry.names() == sorted([*BUILTIN_NAMES, "go-fiber-specialist"])
    fixer = registry.get("fixer")
    assert fixer is not None and fixer.source == "builtin:fixer"


def test_specialists_dir_overrides_repository_and_builtins(tmp_path: Path) -> None:
    write_agent(tmp_path / "repo" / ".claude" / "agents", "implementer", "From the repository.")
    write_agent(tmp_path / "repo" / ".claude" / "agents", "fixer", "Repository fixer.")
    plan_dir = tmp_path / "plan-specialists"
    write_agent(plan_dir, "implementer", "From the plan.")
    write_agent(plan_dir / "nested", "code-reviewer", "Nested folders are read too.")
    registry = load_registry(specialists_dir=plan_dir, repository=tmp_path / "repo")
    assert registry.errors == []
    described = {s.name: s.description for s in registry.all()}
    assert described["implementer"] == "From the plan."
    assert described["fixer"] == "Repository fixer."
    assert described["code-reviewer"] == "Nested folders are read too."


def test_missing_directories_are_skipped(tmp_path: Path) -> None:
    registry = load_registry(specialists_dir=tmp_path / "nope", repository=tmp_path)
    assert registry.names() == BUILTIN_NAMES
    assert registry.errors == [] and registry.warnings == []


def test_registry_collects_every_error(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "good", "Fine.")
    (agents / "no-front-matter.md").write_text("# Notes\n")
    (agents / "bad-yaml.md").write_text("---\nname: bad\ndescription: a: b\n---\n")
    (agents / "no-command.md").write_text("---\nname: nc\ndescription: d\nbackend: command\n---\n")
    (agents / "README.md").write_text("How to write agents; not one itself.\n")
    (agents / "notes.txt").write_text("ignored")
    registry = load_registry(specialists_dir=agents)
    assert "good" in registry
    assert len(registry) == len(BUILTIN_NAMES) + 1
    assert registry.errors == [
        f"{agents / 'bad-yaml.md'}:3: invalid YAML in front matter: mapping values are not "
        "allowed here; a value containing ': ' must be quoted",
        f"{agents / 'no-command.md'}:4: 'backend: command' needs a 'command' (a shell command "
        "line)",
        f"{agents / 'no-front-matter.md'}:1: no front matter: a specialist file starts with a "
        "'---' line, then YAML with at least 'name' and 'description', then another '---' line",
    ]


def test_broken_override_leaves_the_builtin(tmp_path: Path) -> None:
    agents = tmp_path / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "implementer.md").write_text("---\nname: implementer\n---\n")
    registry = load_registry(repository=tmp_path)
    implementer = registry.get("implementer")
    assert implementer is not None and implementer.source == "builtin:implementer"
    assert registry.errors == [f"{agents / 'implementer.md'}: 'description' is required"]


def test_same_name_twice_in_one_directory_warns(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "a", "First.")
    (agents / "b.md").write_text("---\nname: a\ndescription: Second.\n---\nx\n")
    registry = load_registry(specialists_dir=agents)
    specialist = registry.get("a")
    assert specialist is not None and specialist.description == "Second."
    assert registry.warnings == [
        f"{agents / 'b.md'}: name 'a' is also defined in {agents / 'a.md'}; this one is used"
    ]


def test_warnings_are_collected(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "seed.md").write_text(SEED_WITH_INTEGRATIONS)
    registry = load_registry(specialists_dir=agents)
    assert registry.errors == []
    assert registry.warnings == [
        f"{agents / 'seed.md'}:6: unknown key 'mcp_integrations' is kept but not used by coord"
    ]


def test_close_names() -> None:
    registry = load_registry()
    assert registry.close_names("reviewer") == ["code-reviewer"]
    assert registry.close_names("implementor") == ["implementer"]
    assert registry.close_names("test-dev") == ["test-developer"]
    assert registry.close_names("Fixer") == ["fixer"]
    assert registry.close_names("paint") == []
    assert registry.get("Fixer") is None  # names are exact; suggestions are for messages


# --- routing ---------------------------------------------------------------------------------


def routed(registry: SpecialistRegistry, title: str, prompt: str = "") -> str | None:
    specialist = registry.route(title, prompt)
    return specialist.name if specialist else None


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Write tests for the faces handler", "test-developer"),
        ("Implement the /v1/faces handler", "implementer"),
        ("Implementing pagination", "implementer"),
        # A plan's task may change files: the read-only reviewer is never routed one (its
        # work is the review phase); such a task goes to the default specialist.
        ("Review the changes", None),
        ("Paint the fence purple", None),
        ("Fix the failing login test", "fixer"),
        # The word that comes first says what to do.
        ("Add tests for the review endpoint", "test-developer"),
        # Words from other descriptions ("failing", "code") must not steal implementation work.
        ("Implement retry for failing uploads", "implementer"),
        ("Implement code review comments endpoint", "implementer"),
        ("Develop the login page", None),
        # The shell command agent is never routed, even when its name appears.
        ("Run the shell script", None),
    ],
)
def test_route_with_builtins(title: str, expected: str | None) -> None:
    assert routed(load_registry(), title) == expected


def test_route_prefers_the_title_over_the_prompt() -> None:
    registry = load_registry()
    prompt = "Make sure the tests pass, fix lint errors and review your changes before finishing."
    assert routed(registry, "Implement the rate limiter", prompt) == "implementer"
    # With nothing in the title, the prompt decides.
    assert routed(registry, "Rate limiter", "Implement a token bucket.") == "implementer"


def test_explain_route() -> None:
    ranked = load_registry().explain_route("Write tests for the faces handler")
    best = ranked[0]
    assert (best.name, best.title_score, best.prompt_score) == ("test-developer", 4, 0)
    assert best.matched == ("test", "writ")
    assert best.name_position == 1
    assert all(score.name != "shell" for score in ranked)
    assert load_registry().explain_route("Paint the fence purple") == []


def test_route_user_specialists(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "go-fiber-specialist", "Builds Fiber HTTP handlers and middleware in Go.")
    write_agent(agents, "database", "Designs schemas and writes SQL migrations.")
    (agents / "codex.md").write_text(
        "---\nname: codex\ndescription: Implements handlers with the Codex CLI.\n"
        'backend: command\ncommand: codex exec "$COORD_TASK_PROMPT"\n---\n'
    )
    registry = load_registry(specialists_dir=agents)
    assert routed(registry, "Add the Fiber middleware for auth") == "go-fiber-specialist"
    assert routed(registry, "Create the schema migrations for faces") == "database"
    assert routed(registry, "Codex: implement handlers") == "implementer"


def test_route_ties_are_broken_by_name() -> None:
    twins = [
        Specialist(name=name, description="Tunes database indexes.", source="test")
        for name in ("zeta", "alpha")
    ]
    registry = SpecialistRegistry(twins)
    assert routed(registry, "Tune the database indexes") == "alpha"
    assert routed(registry, "Database") is None  # one description word is not enough


@pytest.mark.parametrize("tools", ["Read, Grep", "Read, Task", "Read, Agent", "Read, Bash(ls:*)"])
def test_only_tools_that_cannot_change_a_file_make_a_specialist_read_only(tools: str) -> None:
    specialist, _ = parse(f"---\nname: x\ndescription: d\ntools: {tools}\n---\nBody.\n")
    assert specialist.read_only == (tools == "Read, Grep")


def test_claude_code_disallowed_tools_and_max_turns_are_read() -> None:
    front = "name: x\ndescription: d\ntools: Read, Bash\ndisallowedTools: Bash(rm:*), Write\n"
    specialist, warnings = parse(f"---\n{front}maxTurns: 7\n---\nBody.\n")
    assert specialist.disallowed_tools == ["Bash(rm:*)", "Write"]
    assert specialist.max_turns == 7 and warnings == []
    both = errors_of("---\nname: x\ndescription: d\nmax_turns: 3\nmaxTurns: 7\n---\nBody.\n")
    assert any("not both" in error for error in both)
