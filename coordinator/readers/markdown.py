"""Markdown as the plan readers see it: headings, list items with checkboxes, fenced code,
comments, front matter. Shared by every Markdown reader; knows nothing of what a task is.

`scan` turns a document (or an item's body) into blocks in order: headings, items with the
lines that belong to them, the top-level fenced blocks, and the remaining text lines. Code
blocks and HTML comments hide what is in them (a `- [ ]` in a code block is not an item).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from coordinator.readers.model import Issues

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
HEADING = re.compile(r"^ {0,3}(?P<hashes>#{1,6})(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
# A list item with a checkbox; `star` is Kiro's optional marker (`- [ ]* 2.3 ...`).
ITEM = re.compile(
    r"^(?P<indent>[ \t]*)(?P<marker>[-*+]|\d{1,9}[.)])[ \t]+"
    r"\[(?P<mark>[^\]]{0,3})\](?P<star>\*?)(?=[ \t]|$)[ \t]*(?P<rest>.*)$"
)
BULLET = re.compile(r"^(?P<indent>[ \t]*)(?:[-*+]|\d{1,9}[.)])[ \t]+(?P<rest>.*)$")
_BACKTICK_RUN = re.compile(r"`+")

# Checkbox marks: done, to do, skipped by the author, in progress (still to do).
DONE_MARKS = frozenset({"x", "X"})
OPEN_MARKS = frozenset({" ", ""})
SKIP_MARK = "-"
PROGRESS_MARKS = frozenset({"~", "/"})


def split_lines(text: str) -> list[str]:
    # split("\n"), not splitlines(): line numbers must match what editors and GitHub show.
    return [line.removesuffix("\r") for line in text.split("\n")]


def indent_width(line: str) -> int:
    prefix = line[: len(line) - len(line.lstrip(" \t"))]
    return len(prefix.expandtabs(4))


def dedent(line: str, width: int) -> str:
    """`line` without its first `width` columns of indentation (tabs count 4)."""
    stripped = line.lstrip(" \t")
    prefix = line[: len(line) - len(stripped)].expandtabs(4)
    return prefix[width:] + stripped if len(prefix) >= width else stripped


def is_blank(line: str) -> bool:
    return not line.strip()


def clean_heading(text: str) -> str:
    """Heading text without bold markers and leading emoji or symbols."""
    text = text.replace("**", "").strip()
    return re.sub(r"^[^\w`(\[]+", "", text).strip()


@dataclass
class Fence:
    char: str
    length: int
    line: int

    def closes(self, line: str) -> bool:
        stripped = line.strip()
        return len(stripped) >= self.length and set(stripped) == {self.char}


def open_fence(line: str, *, top_level: bool) -> tuple[Fence, str] | None:
    stripped = line.lstrip(" \t")
    if top_level and indent_width(line) > 3:
        return None
    match = FENCE.match(stripped)
    if match is None:
        return None
    fence = match["fence"]
    info = match["info"].strip()
    if fence[0] == "`" and "`" in info:  # not a fence: inline code
        return None
    return Fence(fence[0], len(fence), 0), info


def front_matter_end(lines: list[str]) -> int:
    """YAML front matter (``---`` ... ``---`` at the top) is skipped: the index after it."""
    if not lines or lines[0].strip() != "---":
        return 0
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return i + 1
    return 0  # no closing line: a thematic break, not front matter


def comment_end(lines: list[str], i: int) -> int:
    """The index after the HTML comment opening on line index `i`."""
    for j in range(i, len(lines)):
        start = lines[j].find("<!--") + 4 if j == i else 0
        if "-->" in lines[j][start:]:
            return j + 1
    return len(lines)


def find_close(lines: list[str], fence: Fence, start: int) -> int | None:
    for j in range(start, len(lines)):
        if fence.closes(lines[j]):
            return j
    return None


def body_end(lines: list[str], i: int, indent: int, issues: Issues, base: int = 1) -> int:
    """The index after the last line of the item starting on index `i`: its indented lines
    (blank lines between them included, fenced code whatever its indentation)."""
    end = i + 1
    j = i + 1
    fence: Fence | None = None
    while j < len(lines):
        line = lines[j]
        if fence is not None:
            if fence.closes(line):
                fence = None
            end = j + 1
            j += 1
            continue
        if is_blank(line):
            j += 1
            continue
        if indent_width(line) <= indent:
            break
        opened = open_fence(line, top_level=False)
        if opened is not None:
            fence = opened[0]
            fence.line = j + base
        end = j + 1
        j += 1
    if fence is not None:
        issues.error(
            fence.line,
            f"this {fence.char * fence.length} block is never closed: it would swallow the "
            "rest of the task",
        )
    return end


def code_spans(text: str) -> list[tuple[int, int, str]] | None:
    """Inline code spans as (start, end, content); None when a backtick run is unmatched."""
    spans: list[tuple[int, int, str]] = []
    runs = list(_BACKTICK_RUN.finditer(text))
    k = 0
    while k < len(runs):
        opening = runs[k]
        closing = next((r for r in runs[k + 1 :] if len(r.group()) == len(opening.group())), None)
        if closing is None:
            return None
        content = text[opening.end() : closing.start()]
        if content.startswith(" ") and content.endswith(" ") and content.strip():
            content = content[1:-1]  # CommonMark: `` `x` `` is "`x`"
        if content.strip():
            spans.append((opening.start(), closing.end(), content.strip()))
        k = runs.index(closing) + 1
    return spans


def prompt_text(lines: list[str]) -> str:
    """The prompt: the text as written, or the content of a code block that is all of it
    (so a shell command in ```sh ... ``` is the command, with its trailing newline)."""
    first = open_fence(lines[0], top_level=False)
    if first is not None and len(lines) >= 2:
        fence = first[0]
        closes = [k for k in range(1, len(lines)) if fence.closes(lines[k])]
        if closes and closes[0] == len(lines) - 1:
            # As CommonMark does: the fence's own indentation comes off its content lines.
            width = indent_width(lines[0])
            inner = [dedent(line, width) for line in lines[1:-1]]
            return "\n".join(inner) + "\n" if inner else ""
    return "\n".join(lines)


def trimmed_text(lines: list[tuple[int, str]]) -> tuple[int | None, str]:
    """(first line number, text) of numbered lines without the blank ones around them."""
    while lines and is_blank(lines[0][1]):
        lines = lines[1:]
    while lines and is_blank(lines[-1][1]):
        lines = lines[:-1]
    if not lines:
        return None, ""
    return lines[0][0], prompt_text([text.rstrip() for _, text in lines])


# --- blocks ------------------------------------------------------------------------------------


@dataclass
class Heading:
    line: int  # 1-based
    level: int
    raw: str  # the text as written

    @property
    def text(self) -> str:
        return clean_heading(self.raw)


@dataclass
class Item:
    line: int  # 1-based
    indent: int
    marker: str  # "-", "*", "1." ...
    mark: str  # between the brackets
    star: bool  # `- [ ]*`: Kiro's optional task
    rest: str  # after the checkbox
    raw: str  # the whole line as written
    body: list[str] = field(default_factory=list)  # the lines below that belong to it


@dataclass
class Text:
    line: int
    text: str


@dataclass
class CodeBlock:
    line: int  # the opening fence's line
    info: str
    body: list[str]


Block = Heading | Item | Text | CodeBlock


def scan(lines: list[str], issues: Issues, *, base: int = 1, start: int = 0) -> list[Block]:
    """The blocks of `lines` (line numbers start at `base`), from index `start`."""
    blocks: list[Block] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("<!--"):
            i = comment_end(lines, i)
            continue
        fence = open_fence(line, top_level=True)
        if fence is not None:
            close = find_close(lines, fence[0], i + 1)
            if close is None:
                issues.error(
                    i + base,
                    f"this {fence[0].char * fence[0].length} block is never closed: "
                    "everything after it would be code",
                )
                return blocks
            blocks.append(CodeBlock(i + base, fence[1], lines[i + 1 : close]))
            i = close + 1
            continue
        heading = HEADING.match(line)
        if heading is not None:
            blocks.append(Heading(i + base, len(heading["hashes"]), heading["text"] or ""))
            i += 1
            continue
        item = ITEM.match(line)
        if item is not None:
            indent = indent_width(item["indent"])
            end = body_end(lines, i, indent, issues, base)
            blocks.append(
                Item(
                    line=i + base,
                    indent=indent,
                    marker=item["marker"],
                    mark=item["mark"],
                    star=bool(item["star"]),
                    rest=item["rest"],
                    raw=line,
                    body=lines[i + 1 : end],
                )
            )
            i = end
            continue
        if not is_blank(line):
            blocks.append(Text(i + base, line))
        i += 1
    return blocks


__all__ = [
    "BULLET",
    "DONE_MARKS",
    "HEADING",
    "ITEM",
    "OPEN_MARKS",
    "PROGRESS_MARKS",
    "SKIP_MARK",
    "Block",
    "CodeBlock",
    "Fence",
    "Heading",
    "Item",
    "Text",
    "body_end",
    "clean_heading",
    "code_spans",
    "comment_end",
    "dedent",
    "find_close",
    "front_matter_end",
    "indent_width",
    "is_blank",
    "open_fence",
    "prompt_text",
    "scan",
    "split_lines",
    "trimmed_text",
]
