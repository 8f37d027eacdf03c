"""The lines indented under a task: `depends on:`, `files:`, `gates:`, `specialist:`, and the
prompt (everything else). Shared by the Markdown readers.

A detail line may be written `depends on: T1`, `- **Files:** a.go` or `**Depends on**: T3`,
and can list its values as `- ` items below it. Problems are reported; bad parts dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from coordinator.readers.markdown import (
    BULLET,
    Fence,
    code_spans,
    dedent,
    indent_width,
    is_blank,
    open_fence,
    trimmed_text,
)
from coordinator.readers.model import Details, Issues, Ref

# The keys every Markdown reader understands, and what they mean.
DETAIL_KEYS = {
    "depends on": "depends_on",
    "depends_on": "depends_on",
    "depends-on": "depends_on",
    "dependencies": "depends_on",
    "files": "files",
    "gate": "gates",
    "gates": "gates",
    "specialist": "specialist",
    "agent": "specialist",
}
# Spec-kit and heading-style plans also write these.
EXTRA_KEYS = {
    "depends": "depends_on",
    "blocked by": "depends_on",
    "requires": "depends_on",
    "file": "files",
    "path": "files",
    "paths": "files",
}


def detail_pattern(keys: dict[str, str]) -> re.Pattern[str]:
    names = "|".join(
        sorted((re.escape(k).replace(r"\ ", "[ _-]") for k in keys), key=len, reverse=True)
    )
    return re.compile(
        rf"^(?:[-*+][ \t]+)?(?:>[ \t]*)?(?:\*\*|__)?(?P<key>{names})[ \t]*(?:\*\*|__)?[ \t]*:"
        r"[ \t]*(?:\*\*|__)?[ \t]*(?P<value>.*?)[ \t]*$",
        re.IGNORECASE,
    )


SPECIALIST_NAME = re.compile(r"^@?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
_REF_SPLIT = re.compile(r"[ \t]*[,;&][ \t]*|[ \t]+and[ \t]+", re.I)
_GATE_NAME_LENGTH = 40
_EMPTY_OUTPUT = re.compile(
    r"\b(?:returns?\s+empty|empty\s+output|no\s+output|prints\s+nothing|outputs\s+nothing)\b",
    re.I,
)


def gate_name(command: str) -> str:
    command = " ".join(command.split())
    if len(command) <= _GATE_NAME_LENGTH:
        return command
    return command[: _GATE_NAME_LENGTH - 3].rstrip() + "..."


_NONE = re.compile(r"^[\s*_`]*(?:none|nothing|n/a|no dependencies)\b", re.I)


def says_none(text: str) -> bool:
    """`none`, `None (tests against what is built)`: no dependencies, said on purpose."""
    return bool(_NONE.match(text))


def split_refs(text: str, line: int, why: str = "depends on") -> list[Ref]:
    parts = [p.strip().strip("`").strip() for p in _REF_SPLIT.split(text)]
    return [Ref(p, line, why) for p in parts if p]


class DetailReader:
    """Reads an item's body into `Details`, reporting problems to `issues`."""

    def __init__(
        self,
        issues: Issues,
        keys: dict[str, str] | None = None,
        refs: Callable[[str, int, str], list[Ref]] | None = None,
    ) -> None:
        self.issues = issues
        self.keys = keys or DETAIL_KEYS
        self.pattern = detail_pattern(self.keys)
        self.parse_refs = refs or split_refs

    def key_of(self, written: str) -> str:
        return self.keys[" ".join(re.split(r"[ _-]+", written.lower()))]

    def set_specialist(self, details: Details, name: str, line: int, *, marker: bool) -> None:
        if details.specialist is not None and details.specialist != name:
            self.issues.error(
                line,
                f"a second specialist '{name}' for this task (already '{details.specialist}', "
                f"line {details.specialist_line})",
            )
            return
        details.specialist, details.specialist_line = name, line
        details.specialist_marker = marker

    def read_body(self, details: Details, body: list[str], first: int) -> None:
        """Detail lines at the body's own indentation; the rest is the prompt."""
        widths = [indent_width(line) for line in body if not is_blank(line)]
        if not widths:
            return
        base = min(widths)
        prompt: list[tuple[int, str]] = []
        fence: Fence | None = None
        j = 0
        while j < len(body):
            line = body[j]
            if fence is not None:
                if fence.closes(line):
                    fence = None
                prompt.append((first + j, dedent(line, base)))
                j += 1
                continue
            if line.lstrip().startswith("<!--"):  # a note to readers, not to the specialist
                closing = next((k for k in range(j, len(body)) if "-->" in body[k]), len(body) - 1)
                j = closing + 1
                continue
            opened = open_fence(line, top_level=False)
            if opened is not None:
                fence = opened[0]
            elif not is_blank(line) and indent_width(line) == base:
                detail = self.pattern.match(line.strip())
                if detail is not None:
                    j = self.detail(details, detail, body, j, first)
                    continue
            prompt.append((first + j, dedent(line, base)))
            j += 1
        details.prompt_line, details.prompt = trimmed_text(prompt)

    def detail(
        self, details: Details, match: re.Match[str], body: list[str], j: int, first: int
    ) -> int:
        """Read one detail line (and its indented `- ` items); the index after it."""
        number = first + j
        key = self.key_of(match["key"])
        values: list[tuple[str, int]] = []
        end = j + 1
        if match["value"]:
            values.append((match["value"], number))
        else:
            width = indent_width(body[j])
            while end < len(body):
                # "files:" then "- a" lines, indented under it or not, up to a blank line
                # (a list in the prompt may follow).
                raw = body[end]
                bullet = BULLET.match(raw)
                if (
                    is_blank(raw)
                    or indent_width(raw) < width
                    or bullet is None
                    or self.pattern.match(bullet["rest"].strip())  # the next detail line
                ):
                    break
                values.append((bullet["rest"].strip(), first + end))
                end += 1
        written = match["key"].strip()
        if not values:
            self.issues.error(
                number,
                f"`{written}:` lists nothing: write the values after the colon, or as "
                "indented `- ` items below it",
            )
            return end
        self.apply(details, key, written, values, number)
        return end

    def apply(
        self,
        details: Details,
        key: str,
        written: str,
        values: list[tuple[str, int]],
        number: int,
    ) -> None:
        if key == "depends_on":
            if details.refs is None:
                details.refs, details.refs_line = [], number
            for text, line in values:
                refs = self.parse_refs(text, line, f"{written.lower()} (line {line})")
                if not refs and not says_none(text):
                    self.issues.error(line, f"`{written}:` names nothing: list tasks, or `none`")
                details.refs.extend(refs)
        elif key == "files":
            for text, line in values:
                names = [n.strip().strip("`").strip() for n in text.split(",")]
                details.files.extend((n, line) for n in names if n)
        elif key == "gates":
            for text, line in values:
                details.gates.extend((gate, line) for gate in self.gates(text, line, inline=True))
        else:
            name = SPECIALIST_NAME.match(values[0][0].strip("`"))
            if len(values) > 1 or name is None:
                self.issues.error(
                    number,
                    f"`{written}:` must name one specialist (letters, digits, '-', '_', "
                    f"'.'), got {' '.join(v for v, _ in values)!r}",
                )
            else:
                self.set_specialist(details, name["name"], number, marker=False)

    def gates(self, text: str, line: int, *, inline: bool) -> list[Any]:
        """Gates in one value: a `{name: .., run: ..}` mapping, `` `commands` `` (optionally
        `name: `command``), or one plain command. Problems are reported; bad parts dropped."""
        text = text.strip()
        if text.startswith("{"):
            return self._gate_mapping(text, line)
        if "`" not in text:
            return [{"name": gate_name(text), "run": text}] if inline else []
        spans = code_spans(text)
        if spans is None:
            self.issues.error(
                line, f"unmatched backtick in {text!r}: put each gate command in `...`"
            )
            return []
        gates: list[Any] = []
        position = 0
        for k, (start, end, command) in enumerate(spans):
            before = text[position:start].strip(" \t,;")
            after_end = spans[k + 1][0] if k + 1 < len(spans) else len(text)
            name = before[:-1].strip() if before.endswith(":") else ""
            gate: dict[str, Any] = {"name": name or gate_name(command), "run": command}
            if _EMPTY_OUTPUT.search(text[end:after_end]):
                gate["expect"] = "empty_output"
            gates.append(gate)
            position = end
        return gates

    def _gate_mapping(self, text: str, line: int) -> list[Any]:
        try:
            mapping = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not a mapping"
            self.issues.error(
                line, f"gate {text!r} is not a valid {{name: .., run: ..}} mapping: {problem}"
            )
            return []
        if not isinstance(mapping, dict):
            self.issues.error(line, f"gate {text!r} is not a {{name: .., run: ..}} mapping")
            return []
        return [mapping]

    def gate_item(self, rest: str, body: list[str], number: int) -> list[Any]:
        """A checkbox under a gates heading: its `` `command` `` is a gate."""
        text = " ".join([rest.strip(), *(line.strip() for line in body if line.strip())])
        gates = self.gates(text, number, inline=False)
        if not gates:
            self.issues.warning(
                number, f"not a gate (no `command` in backticks): {rest.strip()[:60]!r}"
            )
        return gates


__all__ = ["DETAIL_KEYS", "EXTRA_KEYS", "DetailReader", "gate_name", "split_refs"]
