"""Specialists: named agent definitions, loaded from Markdown files with YAML front matter.

The format is Claude Code's `.claude/agents/*.md`, so teams can bring the agent libraries they
already have. Our own keys (`backend`, `command`, `max_turns`, `timeout`) ride in the same front
matter. Keys we do not know are kept in `extra` with a warning rather than rejected, because
those libraries carry keys for other tools (`mcp_integrations`, `permissionMode`, ...).

A registry layers three sources, later ones overriding earlier ones by name: the built-ins in
`specialists/`, the repository's own `.claude/agents/`, and the plan's `specialists_dir`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from coordinator.backends import BACKENDS, SpecialistBackend, is_agent
from coordinator.front_matter import (
    SpecialistError as SpecialistError,  # re-exported: callers catch it from here
)
from coordinator.front_matter import (
    load_yaml,
    split_front_matter,
    split_tools,
    where,
)

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "specialists"

# Names end up in branch names, file names and log lines; Claude Code asks for lowercase and
# hyphens, we also let dots, underscores and capitals through so existing libraries still load.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# Tools that change files (Bash can, whatever it is scoped to; `Task`/`Agent` hand work to a
# sub-agent, which may hold any of them).
_WRITE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit", "Bash", "Task", "Agent"})
# Who takes a task no specialist matches by its words.
DEFAULT_SPECIALIST = "implementer"

# Claude Code keys that carry no meaning here but are too common to warn about.
_QUIET_KEYS = frozenset({"color"})
_KNOWN_KEYS = frozenset(
    {"name", "description", "tools", "model", "backend", "command", "timeout"}
    | {"max_turns", "maxTurns", "disallowedTools"}
)


class Specialist(BaseModel):
    """One agent definition. `prompt` is the system prompt (the Markdown body).

    `tools` empty means "not restricted", as when Claude Code's `tools` key is omitted.
    `source` is the file it came from, or "builtin:<name>" for the ones shipped with coord.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    tools: list[str] = Field(default_factory=list)
    disallowed_tools: list[str] = Field(default_factory=list)  # Claude Code's `disallowedTools`
    model: str | None = None
    backend: SpecialistBackend = "claude"
    backend_named: bool = False  # the file says `backend:` (else a plan may choose one)
    # A shell command line run in the task's worktree (backend "command" only).
    command: str | None = None
    max_turns: int | None = Field(default=None, gt=0)
    timeout: int | None = Field(default=None, gt=0, description="seconds")
    prompt: str = ""
    source: str
    extra: dict[str, Any] = Field(default_factory=dict)

    def backend_for(self, agents_backend: str | None) -> SpecialistBackend:
        """The backend it runs on in a plan whose `agents_backend` is given: that one for
        an agent file that names none; coord's built-ins keep their own."""
        if self.backend_named or agents_backend is None or self.source.startswith("builtin:"):
            return self.backend
        return "claude-code" if agents_backend == "claude-code" else "claude"

    @property
    def read_only(self) -> bool:
        """An agent specialist whose tools cannot change a file (a reviewer's Read, Grep,
        Glob): it is never given a task by routing, since every task lands as a commit."""
        if not is_agent(self.backend) or not self.tools:
            return False
        names = {tool.split("(", 1)[0].strip() for tool in self.tools}
        return not (names - set(self.disallowed_tools)) & _WRITE_TOOLS


# --- parsing ---------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return type(value).__name__


@dataclass
class _Fields:
    """One definition's front matter being read: each reader appends what is wrong to
    `errors` (or `warnings`) with the line it is on, so every problem is reported at once."""

    data: dict[Any, Any]
    key_lines: dict[str, int]
    source: str
    warnings: list[str]
    errors: list[str]

    def at(self, key: str) -> str:
        return where(self.source, self.key_lines.get(key))

    def text(self, key: str, *, required: bool) -> str | None:
        value = self.data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.errors.append(f"{self.at(key)}: '{key}' is required")
            return None
        if not isinstance(value, str):
            self.errors.append(f"{self.at(key)}: '{key}' must be a string, got {_type_name(value)}")
            return None
        return value.strip()

    def max_turns(self) -> int | None:
        """`max_turns`, or Claude Code's spelling `maxTurns` (not both)."""
        if "max_turns" in self.data and "maxTurns" in self.data:
            self.errors.append(f"{self.at('maxTurns')}: give 'max_turns' or 'maxTurns', not both")
        return self.positive_int("maxTurns" if "maxTurns" in self.data else "max_turns")

    def positive_int(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        # bool is an int in Python; `max_turns: yes` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.errors.append(f"{self.at(key)}: '{key}' must be a positive integer, got {value!r}")
            return None
        return value

    def name(self) -> str | None:
        name = self.text("name", required=True)
        if name is not None and not NAME_PATTERN.match(name):
            self.errors.append(
                f"{self.at('name')}: name {name!r} must be letters, digits, '-', '_' or '.', "
                "start with a letter or digit, at most 64 characters"
            )
        return name

    def tools(self, key: str = "tools") -> list[str]:
        tools: list[str] = []
        raw_tools = self.data.get(key)
        at = self.at(key)
        if isinstance(raw_tools, str):
            tools = split_tools(raw_tools)
        elif isinstance(raw_tools, list):
            bad = [item for item in raw_tools if not isinstance(item, str)]
            if bad:
                self.errors.append(f"{at}: '{key}' entries must be strings, got {bad[0]!r}")
            tools = [item.strip() for item in raw_tools if isinstance(item, str) and item.strip()]
        elif raw_tools is not None:
            self.errors.append(
                f"{at}: '{key}' must be a comma-separated string or a list, "
                f"got {_type_name(raw_tools)}"
            )
        if key == "tools" and isinstance(raw_tools, str | list) and not raw_tools:
            # Claude Code reads an empty list as "no tools"; `tools: list[str]` cannot say that.
            self.warnings.append(
                f"{at}: 'tools' is empty, so the specialist is not restricted to any "
                "tools (remove the key, or list the tools it may use)"
            )
        return list(dict.fromkeys(tools))

    def backend(self, command: str | None) -> Any:
        """The backend named (or "claude"), checked against the `command` it needs or ignores."""
        backend = self.data.get("backend")
        if backend is None:
            backend = "claude"
        elif backend not in BACKENDS:
            names = ", ".join(repr(name) for name in BACKENDS)
            self.errors.append(
                f"{self.at('backend')}: 'backend' must be one of {names}, got {backend!r}"
            )
            backend = "claude"
        raw_command = self.data.get("command")
        if (
            backend == "command"
            and command is None
            and (raw_command is None or isinstance(raw_command, str))
        ):
            place = self.at("command") if "command" in self.key_lines else self.at("backend")
            self.errors.append(
                f"{place}: 'backend: command' needs a 'command' (a shell command line)"
            )
        if is_agent(backend) and command is not None:
            self.warnings.append(
                f"{self.at('command')}: 'command' is ignored unless 'backend: command'"
            )
        return backend

    def extra(self) -> dict[str, Any]:
        """The keys coord does not know, kept (with a warning unless they are common)."""
        extra = {str(key): value for key, value in self.data.items() if str(key) not in _KNOWN_KEYS}
        for key in extra:
            if key not in _QUIET_KEYS:
                self.warnings.append(
                    f"{self.at(key)}: unknown key '{key}' is kept but not used by coord"
                )
        return extra


def parse_specialist(text: str, *, source: str) -> tuple[Specialist, list[str]]:
    """Parse one definition. Returns (specialist, warnings); raises SpecialistError listing
    every problem found in the text."""
    front, body = split_front_matter(text, source)
    data, key_lines, warnings = load_yaml(front, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = _type_name(data)
        raise SpecialistError([f"{source}:2: front matter must be a YAML mapping, not a {kind}"])

    fields = _Fields(data, key_lines, source, warnings, errors=[])
    name = fields.name()
    description = fields.text("description", required=True)
    model = fields.text("model", required=False)
    command = fields.text("command", required=False)
    tools = fields.tools()
    backend = fields.backend(command)
    disallowed_tools = fields.tools("disallowedTools")
    max_turns = fields.max_turns()
    timeout = fields.positive_int("timeout")
    extra = fields.extra()

    prompt = body.strip("\n").rstrip()  # keep the first line's indentation
    if is_agent(backend) and not prompt.strip():
        warnings.append(f"{source}: no system prompt: the body after the front matter is empty")

    if fields.errors:
        raise SpecialistError(fields.errors)
    assert name is not None and description is not None  # errors would have been raised
    specialist = Specialist(
        name=name,
        description=description,
        tools=tools,
        disallowed_tools=disallowed_tools,
        model=model,
        backend=backend,
        backend_named="backend" in data,
        command=command,
        max_turns=max_turns,
        timeout=timeout,
        prompt=prompt,
        source=source,
        extra=extra,
    )
    return specialist, warnings


def load_specialist_file(path: Path) -> tuple[Specialist, list[str]]:
    """Read and parse one file; unreadable files raise SpecialistError too."""
    return _load_file(path, source=str(path))


def load_specialist_source(source: str) -> Specialist:
    """The specialist a registry entry came from, read again (on the worker that runs it).

    `source` is a file path, or "builtin:<name>" for the definitions shipped with coord.
    """
    if source.startswith("builtin:"):
        path = BUILTIN_DIR / f"{source.removeprefix('builtin:')}.md"
        spec, _ = _load_file(path, source=source)
    else:
        spec, _ = load_specialist_file(Path(source))
    return spec


def _load_file(path: Path, *, source: str) -> tuple[Specialist, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecialistError([f"{source}: cannot read: {exc}"]) from exc
    return parse_specialist(text, source=source)


# --- routing ---------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
_SUFFIXES = ("ation", "ings", "ing", "ers", "er", "ed", "es", "s")
# Generic role words ("specialist", "developer", "code") are stop words: "Develop the login
# page" must not pick `test-developer`, nor "Write code for X" pick `code-reviewer`.
_STOP_TEXT = """
    a an and any are as at be by can do does for from has have how in into is it its of on or
    our so than that the their them then there these this those to up use used using via was
    we when where which while who will with without you your all also each every if not no
    only out over should must may new make sure
    task plan code agent specialist expert developer engineer assistant develop development
    """
_STOP_WORDS = frozenset(_STOP_TEXT.split())


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        # Keep at least three letters, and leave "class", "process" alone.
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                break
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]  # "change"/"changes", "write"/"writes" meet at "chang", "writ"
    return word


def words(text: str) -> list[str]:
    """Lowercase words in order, stop words dropped, stemmed. Deterministic, no dictionary."""
    stems = []
    for word in _WORD.findall(text.lower()):
        if len(word) < 2 or word in _STOP_WORDS:
            continue
        stem = _stem(word)
        if stem not in _STOP_WORDS:
            stems.append(stem)
    return stems


def tokenize(text: str) -> set[str]:
    return set(words(text))


NAME_WEIGHT = 3
DESCRIPTION_WEIGHT = 1
# One name word, or two description words; a single shared description word is chance.
ROUTE_MIN_SCORE = 2
# A prompt longer than this routes a task only together with its title.
PROMPT_ROUTE_WORDS = 80


@dataclass(frozen=True)
class RouteScore:
    """How well one specialist matches a task, and why.

    Ranked by title score; then by how early in the title a word of the specialist's name
    appears (titles lead with what to do: "Add tests for the review endpoint" is testing);
    then by prompt score, since prompts mention tests, fixes and reviews in passing; then by
    name.
    """

    name: str
    title_score: int
    prompt_score: int
    matched: tuple[str, ...]
    name_position: int | None = None  # index in the title's words of the first name word

    @property
    def total(self) -> int:
        return self.title_score + self.prompt_score

    def key(self) -> tuple[int, int, int, str]:
        position = self.name_position if self.name_position is not None else 1 << 30
        return (-self.title_score, position, -self.prompt_score, self.name)


class SpecialistRegistry:
    """Specialists by name, plus what loading them reported."""

    def __init__(
        self,
        specialists: Iterable[Specialist] = (),
        *,
        warnings: list[str] | None = None,
        errors: list[str] | None = None,
    ) -> None:
        self._by_name: dict[str, Specialist] = {}
        for specialist in specialists:
            self._by_name[specialist.name] = specialist  # later wins
        self.warnings: list[str] = list(warnings or [])
        self.errors: list[str] = list(errors or [])
        # Command specialists are never routed: they run a command line, and choosing one by
        # word overlap could run something the plan's author never meant. Name them instead.
        routable = [s for s in self._by_name.values() if is_agent(s.backend)]
        self._name_tokens = {s.name: tokenize(re.sub(r"[-_.]", " ", s.name)) for s in routable}
        # A word that names a specialist ("test", "review", "fix") is evidence for that one
        # only, not also weak evidence for every other specialist whose description uses it.
        owned = set().union(*self._name_tokens.values())
        self._description_tokens = {
            s.name: tokenize(s.description) - (owned - self._name_tokens[s.name]) for s in routable
        }

    def get(self, name: str) -> Specialist | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def all(self) -> list[Specialist]:
        return [self._by_name[name] for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

    def close_names(self, name: str) -> list[str]:
        """Up to three known names that the given one was probably meant to be."""
        names = self.names()
        lowered = name.lower()
        found = [n for n in names if n.lower() == lowered]
        found += difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        # "reviewer" for "code-reviewer": a whole part of the name is a strong hint.
        found += [n for n in names if lowered and lowered in re.split(r"[-_.]", n.lower())]
        return list(dict.fromkeys(n for n in found if n != name))[:3]

    def explain_route(self, title: str, prompt: str = "") -> list[RouteScore]:
        """Every routable specialist that shares a word with the task, best first."""
        title_words = words(title)
        title_tokens = set(title_words)
        prompt_tokens = tokenize(prompt) - title_tokens
        scores = []
        for name, name_tokens in self._name_tokens.items():
            description_tokens = self._description_tokens[name]
            # A name word counts once, at the name's weight, even if the description has it.
            weight = dict.fromkeys(description_tokens, DESCRIPTION_WEIGHT)
            weight |= dict.fromkeys(name_tokens, NAME_WEIGHT)
            title_score = sum(weight.get(token, 0) for token in title_tokens)
            prompt_score = sum(weight.get(token, 0) for token in prompt_tokens)
            if not title_score and not prompt_score:
                continue
            positions = [i for i, word in enumerate(title_words) if word in name_tokens]
            matched = sorted((title_tokens | prompt_tokens) & weight.keys())
            scores.append(
                RouteScore(
                    name=name,
                    title_score=title_score,
                    prompt_score=prompt_score,
                    matched=tuple(matched),
                    name_position=positions[0] if positions else None,
                )
            )
        return sorted(scores, key=RouteScore.key)

    def route(self, title: str, prompt: str = "") -> Specialist | None:
        """The specialist for a task that names none, or None when nothing fits well enough.
        Read-only specialists never get a task this way."""
        ranked = [
            r for r in self.explain_route(title, prompt) if not self._by_name[r.name].read_only
        ]
        if not ranked or ranked[0].total < ROUTE_MIN_SCORE:
            return None
        if not ranked[0].title_score and len(prompt.split()) > PROMPT_ROUTE_WORDS:
            # A long prompt (a plan's step-by-step body) mentions tests, fixes and reviews
            # in passing: without a word in the title, it says nothing about who should work.
            return None
        return self._by_name[ranked[0].name]

    def default_specialist(self) -> Specialist | None:
        """Who takes the tasks no specialist matches: the implementer, when it can write."""
        spec = self._by_name.get(DEFAULT_SPECIALIST)
        return spec if spec is not None and not spec.read_only else None


# --- loading ---------------------------------------------------------------------------------


def _definition_files(directory: Path) -> list[Path]:
    # Nested folders are allowed so libraries can be organised; a README is documentation.
    files = [p for p in directory.rglob("*.md") if p.is_file() and p.name.lower() != "readme.md"]
    return sorted(files, key=lambda p: p.relative_to(directory).as_posix())


def load_registry(
    *, specialists_dir: Path | None = None, repository: Path | None = None
) -> SpecialistRegistry:
    """Built-ins, then `<repository>/.claude/agents`, then `specialists_dir`; later ones
    override earlier ones by name. Every file is read: problems are collected in `errors`
    and `warnings` instead of stopping at the first. Missing directories are skipped
    (validation reports a missing `specialists_dir`)."""
    layers: list[tuple[Path, bool]] = [(BUILTIN_DIR, True)]
    if repository is not None:
        layers.append((repository / ".claude" / "agents", False))
    if specialists_dir is not None:
        layers.append((specialists_dir, False))

    loaded: dict[str, Specialist] = {}
    warnings: list[str] = []
    errors: list[str] = []
    for directory, builtin in layers:
        if not directory.is_dir():
            continue
        seen_here: dict[str, str] = {}
        for path in _definition_files(directory):
            source = f"builtin:{path.stem}" if builtin else str(path)
            try:
                specialist, file_warnings = _load_file(path, source=source)
            except SpecialistError as exc:
                errors.extend(exc.messages)
                continue
            warnings.extend(file_warnings)
            if specialist.name in seen_here:
                warnings.append(
                    f"{source}: name '{specialist.name}' is also defined in "
                    f"{seen_here[specialist.name]}; this one is used"
                )
            seen_here[specialist.name] = source
            loaded[specialist.name] = specialist
    return SpecialistRegistry(loaded.values(), warnings=warnings, errors=errors)
