"""The tools of a Claude specialist, confined to the task's git worktree.

- `EditorTool`: the Anthropic-defined text editor (`text_editor_20250728`, name
  `str_replace_based_edit_tool`): view / create / str_replace / insert. Output formats and
  error texts follow the ones Claude models are trained on (`cat -n` numbering, "No match
  found for replacement", "Found N matches ...").
- `BashTool`: the Anthropic-defined bash tool (`bash_20250124`), one fresh shell per command.
- `SearchTool`: our own read-only search for specialists granted Grep / Glob / LS (reviewers).

Every tool takes whatever the model sent and answers with a `ToolResult`; a malformed call
gets an error result saying what is wrong, never an exception. Every path is resolved
(symlinks included) and must stay inside the worktree (`resolve_inside`). Which tools a
specialist gets comes from its front matter `tools:` (`permissions_for`, `tool_definitions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import re
import shutil
import signal
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from activities.jail import Sandbox
from activities.process import (
    SHELL,
    CommandNotStartedError,
    is_secret_name,
    run_shell,
    scrubbed_env,
)

EDITOR_TYPE = "text_editor_20250728"
EDITOR_NAME = "str_replace_based_edit_tool"
BASH_TYPE = "bash_20250124"
BASH_NAME = "bash"
SEARCH_NAME = "search"

DEFAULT_MAX_VIEW_CHARS = 16_000
_BINARY_SNIFF_BYTES = 8192
_READ_CHUNK = 1 << 20  # a line longer than this is read in pieces
_SNIPPET_CONTEXT = 4  # lines shown around an edit


class ToolResult(BaseModel):
    """What goes back to the model as the `tool_result` block."""

    content: str
    is_error: bool = False


def _error(message: str) -> ToolResult:
    return ToolResult(content=message, is_error=True)


# --- permissions ----------------------------------------------------------------------------

# Claude Code tool names (compared case-insensitively) and what they grant here.
_VIEW_TOOLS = frozenset({"read", "notebookread"})
_WRITE_TOOLS = frozenset({"write", "edit", "multiedit", "notebookedit"})
_BASH_TOOLS = frozenset({"bash"})
_SEARCH_TOOLS = frozenset({"grep", "glob", "ls"})
# Known to Claude Code but not provided by this backend.
_UNAVAILABLE_TOOLS = frozenset(
    {
        "webfetch",
        "websearch",
        "task",
        "agent",
        "todowrite",
        "todoread",
        "bashoutput",
        "killshell",
        "killbash",
        "askuserquestion",
        "exitplanmode",
        "enterplanmode",
        "slashcommand",
        "skill",
        "listmcpresourcestool",
        "readmcpresourcetool",
    }
)
_TOOL_ENTRY = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*(?:\((.*)\))?\s*", re.DOTALL)


@dataclass(frozen=True)
class ToolPermissions:
    """What a specialist may do, from its front matter `tools:`."""

    view: bool  # the editor's view
    write: bool  # the editor's create / str_replace / insert
    bash: bool
    search: bool  # the read-only `search` tool
    unknown: tuple[str, ...] = ()  # names we do not recognise (warn once)
    unavailable: tuple[str, ...] = ()  # Claude Code tools this backend does not provide
    # Entries with a scope, e.g. "Bash(git add:*)": the tool is granted whole, the scope is
    # not enforced (worth a warning: the specialist can do more than its definition says).
    unenforced_scopes: tuple[str, ...] = ()
    declared: tuple[str, ...] = ()  # the list as written; empty: not restricted

    def describe(self) -> str:
        """The declared tools for messages: "Read, Grep, Glob", or "all tools"."""
        return ", ".join(self.declared) if self.declared else "all tools"


def permissions_for(tools: Sequence[str]) -> ToolPermissions:
    """Permissions from Claude Code tool names ("Read", "Bash(git add:*)", "mcp__x__y", ...).

    An empty list means every tool, as when Claude Code's `tools` key is omitted.
    """
    declared = tuple(entry.strip() for entry in tools if entry.strip())
    if not declared:
        return ToolPermissions(view=True, write=True, bash=True, search=True)
    granted: set[str] = set()
    unknown: list[str] = []
    unavailable: list[str] = []
    scoped: list[str] = []
    for entry in declared:
        match = _TOOL_ENTRY.fullmatch(entry)
        if match is None:
            unknown.append(entry)
            continue
        name = match.group(1).lower()
        scope = (match.group(2) or "").strip()
        if name.startswith("mcp__") or name in _UNAVAILABLE_TOOLS:
            unavailable.append(entry)
            continue
        kinds = {
            "view": name in _VIEW_TOOLS,
            "write": name in _WRITE_TOOLS,
            "bash": name in _BASH_TOOLS,
            "search": name in _SEARCH_TOOLS,
        }
        kind = next((k for k, hit in kinds.items() if hit), None)
        if kind is None:
            unknown.append(entry)
            continue
        granted.add(kind)
        if scope and scope != "*":
            scoped.append(entry)
    return ToolPermissions(
        view="view" in granted,
        write="write" in granted,
        bash="bash" in granted,
        search="search" in granted,
        unknown=tuple(unknown),
        unavailable=tuple(unavailable),
        unenforced_scopes=tuple(scoped),
        declared=declared,
    )


def tool_definitions(
    perms: ToolPermissions, *, max_characters: int | None = None
) -> list[dict[str, Any]]:
    """The `tools` list for the Messages API (without `finish`, without cache_control).

    The editor comes with view or write (a view-only editor refuses changes in its result);
    bash with Bash; `search` with Grep/Glob/LS, and also for a specialist that may read but
    has no bash to look around with. `max_characters` tells the API how much one view shows.
    """
    definitions: list[dict[str, Any]] = []
    if perms.view or perms.write:
        editor: dict[str, Any] = {"type": EDITOR_TYPE, "name": EDITOR_NAME}
        if max_characters is not None:
            editor["max_characters"] = max_characters
        definitions.append(editor)
    if perms.bash:
        definitions.append({"type": BASH_TYPE, "name": BASH_NAME})
    if perms.search or (perms.view and not perms.bash):
        definitions.append(copy.deepcopy(SearchTool.definition))
    return definitions


# --- confinement ----------------------------------------------------------------------------


class PathOutsideWorkspace(Exception):
    """A path the model gave was refused: outside the worktree (also through a symlink), a
    write into `.git`, or not a usable path at all. The message names the path."""


def resolve_inside(root: Path, path: str, *, write: bool = False) -> Path:
    """The real location of `path` (relative to `root`, or absolute), which must be inside
    `root` once both are resolved.

    Symlinks are followed wherever they exist, so a link inside the worktree that points out
    is refused; for a path that does not exist yet, its nearest existing parent is resolved
    and `..` after it is applied to that. With `write`, paths inside a `.git` directory (or
    the `.git` file of a worktree) are refused too: git's own data is not the task's.
    """
    if not path.strip():
        raise PathOutsideWorkspace("the path is empty: give a file or directory in the worktree")
    if "\x00" in path:
        raise PathOutsideWorkspace(f"the path {path!r} contains a NUL character")
    base = root.resolve()
    candidate = Path(path) if os.path.isabs(path) else base / path
    try:
        resolved = candidate.resolve()  # not strict: a missing tail is appended as given
    except (OSError, RuntimeError) as err:  # a symlink loop (RuntimeError before 3.13)
        raise PathOutsideWorkspace(f"the path {path} cannot be resolved: {err}") from err
    if resolved != base and base not in resolved.parents:
        raise PathOutsideWorkspace(
            f"the path {path} is outside the worktree {base} (it resolves to {resolved}); "
            "only files inside the worktree can be used"
        )
    if write and any(part.lower() == ".git" for part in resolved.relative_to(base).parts):
        raise PathOutsideWorkspace(
            f"the path {path} is inside .git, which holds git's own data: it cannot be "
            "changed with the editor"
        )
    return resolved


# --- reading the model's input --------------------------------------------------------------


class _BadInput(Exception):
    """A call the model got wrong; the message goes back as an error result."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _input_object(tool_input: object, tool: str) -> dict[str, Any]:
    if not isinstance(tool_input, dict):
        raise _BadInput(
            f"the {tool} tool takes a JSON object as input, got {_json_type(tool_input)}"
        )
    return tool_input


def _required_str(data: Mapping[str, Any], key: str, context: str) -> str:
    if key not in data or data[key] is None:
        raise _BadInput(f"missing required parameter `{key}` {context}")
    return _as_str(data[key], key)


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else _as_str(value, key)


def _as_str(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise _BadInput(f"parameter `{key}` must be a string, got {_json_type(value)}")
    return value


def _as_int(value: object, key: str) -> int:
    # JSON has one number type: 3.0 is 3, 3.5 is not a line number.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadInput(f"parameter `{key}` must be an integer, got {_json_type(value)}")
    return value


def _encode(text: str, key: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:  # a lone surrogate from a JSON escape
        raise _BadInput(f"parameter `{key}` cannot be written as UTF-8: {err.reason}") from err


# --- the text editor ------------------------------------------------------------------------


@dataclass
class _Text:
    text: str  # with "\n" line ends
    crlf: bool  # the file uses "\r\n" throughout; written back that way


def _split_lines(text: str) -> list[str]:
    """Lines as `cat -n` counts them: a final newline does not start another line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _numbered(lines: Sequence[str], first: int) -> str:
    return "\n".join(f"{number:6}\t{line}" for number, line in enumerate(lines, start=first))


def _find_all(text: str, needle: str) -> list[int]:
    """Every start of `needle`, overlapping ones included (they are ambiguous too)."""
    positions: list[int] = []
    at = text.find(needle)
    while at != -1:
        positions.append(at)
        at = text.find(needle, at + 1)
    return positions


def _line_pieces(path: Path, keep: int) -> Iterator[tuple[bytes, int]]:
    """Each line of the file: its first `keep` bytes (line end included) and its length.

    Lines are read in pieces, so a minified file with one huge line costs no more memory
    than `keep`.
    """
    with path.open("rb") as f:
        kept = bytearray()
        length = 0
        for piece in iter(partial(f.readline, _READ_CHUNK), b""):
            length += len(piece)
            if len(kept) < keep:
                kept += piece[: keep - len(kept)]
            if piece.endswith(b"\n"):
                yield bytes(kept), length
                kept = bytearray()
                length = 0
        if length:
            yield bytes(kept), length


def _strip_line_end(raw: bytes) -> bytes:
    if raw.endswith(b"\r\n"):
        return raw[:-2]
    return raw[:-1] if raw.endswith(b"\n") else raw


class EditorTool:
    """The Anthropic-defined text editor, name `str_replace_based_edit_tool`, in a worktree.

    `view` shows a file with `cat -n` numbering (a range with `view_range`, 1-based, end -1 =
    to the end) or lists a directory two levels deep. A view is cut at `max_view_chars`, and
    a file above `max_file_bytes` is never read whole: both are shown in ranges with a note
    saying which lines are shown and how to see more. `create` writes a file (replacing one
    that exists), `str_replace` replaces exactly one occurrence of `old_str`, `insert` adds
    `insert_text` (or the older `new_str`) after line `insert_line` (0 = at the top).
    Binary files are refused; files up to `max_edit_bytes` can be changed.
    """

    name = EDITOR_NAME

    def __init__(
        self,
        root: Path,
        *,
        allow_write: bool,
        max_view_chars: int = DEFAULT_MAX_VIEW_CHARS,
        max_file_bytes: int = 256 * 1024,
        max_edit_bytes: int = 4 * 1024 * 1024,
        tools: Sequence[str] = (),
    ) -> None:
        self.root = root.resolve()
        self.allow_write = allow_write
        self.max_view_chars = max_view_chars
        self.max_file_bytes = max_file_bytes
        self.max_edit_bytes = max_edit_bytes
        self._tools = f"tools: {', '.join(tools)}" if tools else "no Write or Edit tool"
        self._changed: list[str] = []

    @property
    def changed_files(self) -> list[str]:
        """Files created or edited, relative to the worktree, in the order first changed."""
        return list(self._changed)

    async def __call__(self, tool_input: object) -> ToolResult:
        # In a thread: a large file must not hold up the event loop and its heartbeats.
        try:
            return await asyncio.to_thread(self._run, tool_input)
        except Exception as err:  # the loop needs an answer for every tool_use
            return _error(f"the editor failed: {type(err).__name__}: {err}")

    def _run(self, tool_input: object) -> ToolResult:
        command = "?"
        shown = "?"
        try:
            data = _input_object(tool_input, EDITOR_NAME)
            command = _required_str(data, "command", "(view, create, str_replace or insert)")
            handlers = {
                "view": self._view,
                "create": self._create,
                "str_replace": self._str_replace,
                "insert": self._insert,
            }
            if command == "undo_edit":
                raise _BadInput(
                    "undo_edit is not available in this version of the editor; to revert a "
                    "change, str_replace the text back"
                )
            handler = handlers.get(command)
            if handler is None:
                raise _BadInput(
                    f"unknown command {command!r}: use view, create, str_replace or insert"
                )
            if command != "view" and not self.allow_write:
                return _error(
                    f"this specialist may not change files ({self._tools}); "
                    f"`{command}` was refused. Report what should change instead."
                )
            shown = _required_str(data, "path", f"for command `{command}`")
            return handler(data, shown)
        except (_BadInput, PathOutsideWorkspace) as err:
            return _error(str(err))
        except OSError as err:
            return _error(f"{command} {shown} failed: {err.strerror or err}")

    # --- view ---

    def _view(self, data: Mapping[str, Any], shown: str) -> ToolResult:
        target = resolve_inside(self.root, shown)
        view_range = data.get("view_range")
        if not target.exists():
            raise _BadInput(f"The path {shown} does not exist. Please provide a valid path.")
        if target.is_dir():
            if view_range is not None:
                raise _BadInput(
                    "The `view_range` parameter is not allowed when `path` points to a directory."
                )
            return self._list_directory(target, shown)
        start, end = _parse_view_range(view_range)
        return self._view_file(target, shown, start, end, ranged=view_range is not None)

    def _list_directory(self, directory: Path, shown: str) -> ToolResult:
        prefix = "" if shown.strip() in ("", ".", "./") else shown.rstrip("/") + "/"
        entries: list[str] = []
        used = 0
        cut = False

        def walk(folder: Path, relative: str, depth: int) -> None:
            nonlocal used, cut
            try:
                children = sorted(os.scandir(folder), key=lambda entry: entry.name)
            except OSError:
                return
            for child in children:
                if cut:
                    return
                if child.name.startswith("."):
                    continue
                # Symlinked folders are listed, not entered: they may point anywhere.
                is_dir = child.is_dir(follow_symlinks=False)
                line = f"{prefix}{relative}{child.name}{'/' if is_dir else ''}"
                if used + len(line) + 1 > self.max_view_chars:
                    cut = True
                    return
                entries.append(line)
                used += len(line) + 1
                if is_dir and depth < 2:
                    walk(Path(child.path), f"{relative}{child.name}/", depth + 1)

        walk(directory, "", 1)
        body = "\n".join(entries) if entries else "(no files: the directory is empty)"
        note = (
            f"\n[listing cut after {len(entries)} entries; view a subdirectory to see more]"
            if cut
            else ""
        )
        return ToolResult(
            content=(
                f"Here's the files and directories up to 2 levels deep in {shown}, "
                f"excluding hidden items:\n{body}\n{note}"
            ).rstrip("\n")
        )

    def _view_file(
        self, target: Path, shown: str, start: int, end: int | None, *, ranged: bool
    ) -> ToolResult:
        size = self._regular_file_size(target, shown)
        self._refuse_binary(target, shown, size)
        budget = self.max_view_chars
        lines: list[str] = []
        used = 0
        total = 0
        last = start - 1
        full = False  # the budget is spent: count the remaining lines only
        undecodable = False
        # Enough bytes of each line to fill the whole budget with it.
        for number, (raw, length) in enumerate(_line_pieces(target, budget * 4 + 2), start=1):
            total = number
            if full or number < start or (end is not None and number > end):
                continue
            body = _strip_line_end(raw)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = body.decode("utf-8", errors="replace")
                undecodable = undecodable or len(raw) == length  # a cut piece may split a char
            line = f"{number:6}\t{text}"
            if used + len(line) + 1 > budget:
                if lines:
                    full = True
                    continue
                # One line longer than the whole budget: show its start.
                line = f"{line[:budget]} ... [line {number} cut: {length:,} bytes in all]"
                full = True
            lines.append(line)
            used += len(line) + 1
            last = number
        if total == 0:
            return ToolResult(content=f"The file {shown} is empty.")
        if start > total:
            raise _BadInput(
                f"Invalid `view_range`: its first element `{start}` should be within the range "
                f"of lines of the file: [1, {total}]"
            )
        notes: list[str] = []
        wanted_end = total if end is None else min(end, total)
        if last < wanted_end:
            more_end = min(total, last + max(1, last - start + 1))
            why = (
                f"the file is large ({size:,} bytes)"
                if size > self.max_file_bytes
                else f"a view shows at most {budget:,} characters"
            )
            notes.append(
                f"[showing lines {start}-{last} of {total}; {why}: use view_range, e.g. "
                f"[{last + 1}, {more_end}], to see more]"
            )
        elif ranged and end is not None and end > total:
            notes.append(f"[the file has {total} lines]")
        if undecodable:
            notes.append("[the file is not valid UTF-8: undecodable bytes are shown as \ufffd]")
        content = f"Here's the result of running `cat -n` on {shown}:\n" + "\n".join(lines)
        if notes:
            content += "\n\n" + "\n".join(notes)
        return ToolResult(content=content)

    # --- changes ---

    def _create(self, data: Mapping[str, Any], shown: str) -> ToolResult:
        file_text = _required_str(data, "file_text", "for command `create` (the file's content)")
        content = _encode(file_text, "file_text")
        target = resolve_inside(self.root, shown, write=True)
        if target.is_dir():
            raise _BadInput(f"{shown} is a directory; give the path of a file to create")
        existed = target.exists()
        if existed:
            self._regular_file_size(target, shown)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        self._record(target)
        if existed:
            return ToolResult(content=f"File overwritten at: {shown} (its old content is gone)")
        return ToolResult(content=f"File created successfully at: {shown}")

    def _str_replace(self, data: Mapping[str, Any], shown: str) -> ToolResult:
        old = _required_str(data, "old_str", "for command `str_replace` (the text to replace)")
        new = _optional_str(data, "new_str") or ""
        if not old:
            raise _BadInput(
                "`old_str` is empty: give the exact text to replace (use insert to add text)"
            )
        target = resolve_inside(self.root, shown, write=True)
        document = self._load(target, shown)
        if document.crlf:
            old, new = old.replace("\r\n", "\n"), new.replace("\r\n", "\n")
        text = document.text
        positions = _find_all(text, old)
        if not positions:
            hint = ""
            stripped = old.strip()
            if stripped and stripped != old and stripped in text:
                hint = (
                    " (it does match without its leading and trailing whitespace: copy the "
                    "text exactly, indentation included)"
                )
            raise _BadInput(
                f"No match found for replacement: `old_str` did not appear verbatim in "
                f"{shown}{hint}. Please check your text and try again."
            )
        if len(positions) > 1:
            numbers = ", ".join(str(text.count("\n", 0, at) + 1) for at in positions[:20])
            raise _BadInput(
                f"Found {len(positions)} matches for replacement text in {shown} (at lines "
                f"{numbers}). Please provide more context in `old_str` to make a unique match."
            )
        if old == new:
            raise _BadInput("`old_str` and `new_str` are the same: nothing to change")
        at = positions[0]
        changed = text[:at] + new + text[at + len(old) :]
        self._save(target, document, changed, "new_str")
        first = text.count("\n", 0, at) + 1
        snippet = _snippet(changed, first, new.count("\n"))
        return ToolResult(
            content=(
                f"The file {shown} has been edited. Here's the result of running `cat -n` on a "
                f"snippet of {shown}:\n{snippet}\nReview the changes and make sure they are as "
                "expected. Edit the file again if necessary."
            )
        )

    def _insert(self, data: Mapping[str, Any], shown: str) -> ToolResult:
        if data.get("insert_line") is None:
            raise _BadInput(
                "missing required parameter `insert_line` for command `insert` (the line to "
                "insert after; 0 = at the top of the file)"
            )
        line = _as_int(data["insert_line"], "insert_line")
        key = "insert_text" if data.get("insert_text") is not None else "new_str"
        if data.get(key) is None:
            raise _BadInput("missing required parameter `insert_text` for command `insert`")
        insert_text = _as_str(data[key], key)
        if not insert_text:
            raise _BadInput(f"`{key}` is empty: nothing to insert")
        target = resolve_inside(self.root, shown, write=True)
        document = self._load(target, shown)
        lines = _split_lines(document.text)
        if not 0 <= line <= len(lines):
            raise _BadInput(
                f"Invalid `insert_line` parameter: {line}. It should be within the range of "
                f"lines of the file: [0, {len(lines)}]"
            )
        added = _split_lines(insert_text.replace("\r\n", "\n") if document.crlf else insert_text)
        ends_with_newline = document.text.endswith("\n") or not document.text
        changed = "\n".join(lines[:line] + added + lines[line:])
        if ends_with_newline:
            changed += "\n"
        self._save(target, document, changed, key)
        snippet = _snippet(changed, line + 1, len(added) - 1)
        return ToolResult(
            content=(
                f"The file {shown} has been edited. Here's the result of running `cat -n` on a "
                f"snippet of the edited file:\n{snippet}\nReview the changes and make sure they "
                "are as expected (correct indentation, no duplicate lines, etc). Edit the file "
                "again if necessary."
            )
        )

    # --- files ---

    def _regular_file_size(self, target: Path, shown: str) -> int:
        info = target.stat()
        if not stat.S_ISREG(info.st_mode):
            # A FIFO would block the read forever; a device is not the task's.
            raise _BadInput(f"{shown} is not a regular file")
        return info.st_size

    def _refuse_binary(self, target: Path, shown: str, size: int) -> None:
        with target.open("rb") as f:
            head = f.read(_BINARY_SNIFF_BYTES)
        if b"\x00" in head:
            raise _BadInput(
                f"{shown} is a binary file ({size:,} bytes); the editor shows and changes text "
                "files only"
            )

    def _load(self, target: Path, shown: str) -> _Text:
        if not target.exists():
            raise _BadInput(
                f"The path {shown} does not exist. Please provide a valid path (use create to "
                "make a new file)."
            )
        if target.is_dir():
            raise _BadInput(f"{shown} is a directory; give the path of a file")
        size = self._regular_file_size(target, shown)
        if size > self.max_edit_bytes:
            raise _BadInput(
                f"{shown} is too large for the editor to change ({size:,} bytes, the limit is "
                f"{self.max_edit_bytes:,})"
            )
        self._refuse_binary(target, shown, size)
        try:
            text = target.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise _BadInput(
                f"{shown} is not UTF-8 text (byte {err.start}); the editor cannot change it "
                "without damaging it"
            ) from err
        crlf = "\r\n" in text and text.count("\r\n") == text.count("\n")
        return _Text(text.replace("\r\n", "\n") if crlf else text, crlf)

    def _save(self, target: Path, document: _Text, text: str, key: str) -> None:
        content = _encode(text.replace("\n", "\r\n") if document.crlf else text, key)
        target.write_bytes(content)
        self._record(target)

    def _record(self, target: Path) -> None:
        relative = target.relative_to(self.root).as_posix()
        if relative not in self._changed:
            self._changed.append(relative)


def _parse_view_range(value: object) -> tuple[int, int | None]:
    """(start, end) from `view_range`; end None = to the end of the file."""
    if value is None:
        return 1, None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _BadInput(
            "Invalid `view_range`: it should be a list of two integers [start, end], "
            f"1-based, end -1 for the end of the file; got {json.dumps(value, default=str)}"
        )
    start = _as_int(value[0], "view_range[0]")
    end = _as_int(value[1], "view_range[1]")
    if start < 1:
        raise _BadInput(f"Invalid `view_range`: its first element `{start}` should be 1 or more")
    if end == -1:
        return start, None
    if end < start:
        raise _BadInput(
            f"Invalid `view_range`: its second element `{end}` should be larger or equal than "
            f"its first `{start}` (or -1 for the end of the file)"
        )
    return start, end


def _snippet(text: str, first: int, extra_lines: int) -> str:
    """Numbered lines around lines first .. first + extra_lines of `text`."""
    lines = _split_lines(text)
    start = max(1, first - _SNIPPET_CONTEXT)
    end = min(len(lines), first + extra_lines + _SNIPPET_CONTEXT)
    return _numbered(lines[start - 1 : end], start)


# --- bash -----------------------------------------------------------------------------------

_RUN_SHELL_NOTE = re.compile(r"\n\[coord\] [^\n]*\n")  # run_shell's notes for the log reader
NEWLINE = "\n"


class BashTool:
    """The Anthropic-defined bash tool, name `bash`, in a worktree.

    Stateless: each command runs in a fresh shell (bash when installed, else sh) starting in
    the worktree, so `cd` and variables do not carry over to the next command; `restart`
    therefore has nothing to reset. The environment is the caller's, scrubbed again of
    credentials (`is_secret_name` and `secret_names`); each command gets its own process
    group, killed at `timeout_s` together with anything it started, and runs in `sandbox`
    (the jail of activities/jail.py) with its group recorded in `slot`. The model sees stdout
    and stderr combined, cut to head and tail around `output_limit` characters, with the exit
    code when it is not 0; the full output of each command is in its own log file in
    `log_dir`. Values of the worker's secrets that still show up in an output are replaced by
    "[redacted]" before the model sees it.
    """

    name = BASH_NAME

    def __init__(
        self,
        root: Path,
        *,
        env: Mapping[str, str],
        timeout_s: float = 120,
        output_limit: int = 30_000,
        log_dir: Path,
        secret_names: Sequence[str] = (),
        sandbox: Sandbox | None = None,
        slot: Path | None = None,
    ) -> None:
        self.root = root.resolve()
        self.sandbox = sandbox
        self.slot = slot
        self.timeout_s = timeout_s
        self.output_limit = output_limit
        self.log_dir = log_dir
        extra = {name.upper() for name in secret_names}

        def secret(name: str) -> bool:
            return is_secret_name(name) or name.upper() in extra

        self.env = scrubbed_env(base={key: value for key, value in env.items() if not secret(key)})
        bash = shutil.which("bash", path=self.env.get("PATH")) or shutil.which("bash")
        self.shell = bash or SHELL
        # Longest first, so a secret containing another is replaced whole.
        values = {v for k, v in {**os.environ, **env}.items() if secret(k) and len(v) >= 8}
        self._secret_values = sorted(values, key=len, reverse=True)
        self._next_log = 1
        self.commands_run = 0

    async def __call__(self, tool_input: object) -> ToolResult:
        try:
            data = _input_object(tool_input, BASH_NAME)
            if data.get("restart") is True:
                return ToolResult(content="tool has been restarted.")
            if data.get("command") is None:
                raise _BadInput("missing required parameter `command` (or `restart: true`)")
            command = _as_str(data["command"], "command")
            if not command.strip():
                raise _BadInput("`command` is empty: give a shell command to run")
        except _BadInput as err:
            return _error(str(err))
        log_path = self._log_path()
        self.commands_run += 1
        try:
            outcome = await run_shell(
                command,
                cwd=self.root,
                env=self.env,
                stdin=None,
                timeout=self.timeout_s,
                log_path=log_path,
                shell=self.shell,
                heartbeat=False,  # the agent loop heartbeats with its own details
                sandbox=self.sandbox,
                slot=self.slot,
            )
            output = await asyncio.to_thread(_read_output, log_path, self.output_limit)
        except CommandNotStartedError as err:
            return _error(str(err))
        except OSError as err:
            return _error(f"the command's output could not be recorded: {err}")
        for value in self._secret_values:
            output = output.replace(value, "[redacted]")
        output = output.rstrip("\n") or "(no output)"
        if outcome.timed_out:
            return _error(
                f"{output}\n\ntimed out after {self.timeout_s:g} s; the process group was killed"
            )
        code = outcome.exit_code
        if code is not None and code < 0:
            output += f"\n\nkilled by signal {_signal_name(-code)}"
        elif code:
            output += f"\n\nexit code {code}"
        return ToolResult(content=output)

    def _log_path(self) -> Path:
        # Skip numbers in use: a retried activity resuming its transcript keeps the old logs.
        while True:
            path = self.log_dir / f"bash-{self._next_log:04d}.log"
            self._next_log += 1
            if not path.exists():
                return path


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _read_output(log_path: Path, limit: int) -> str:
    """The command's output from its log, cut to head + tail around `limit` characters."""
    head_chars = limit * 2 // 5  # the end (errors, summaries) usually matters more
    tail_chars = limit - head_chars
    size = log_path.stat().st_size
    with log_path.open("rb") as f:
        whole = size <= limit * 8
        if whole:
            text = _RUN_SHELL_NOTE.sub("\n", f.read().decode("utf-8", errors="replace"))
            if len(text) <= limit:
                return text
            head, tail = text[:head_chars], text[-tail_chars:]
        else:  # read only the ends of a huge log
            head_bytes = f.read(head_chars * 4)
            f.seek(size - tail_chars * 4)
            tail_bytes = f.read()
            head = _RUN_SHELL_NOTE.sub("\n", head_bytes.decode("utf-8", errors="replace"))
            tail = _RUN_SHELL_NOTE.sub("\n", tail_bytes.decode("utf-8", errors="replace"))
            head, tail = head[:head_chars], tail[-tail_chars:]
    # Cut at line ends when one is near, so no half lines are shown.
    newline = head.rfind("\n")
    if newline > head_chars * 4 // 5:
        head = head[: newline + 1]
    newline = tail.find("\n")
    if 0 <= newline < tail_chars // 5:
        tail = tail[newline + 1 :]
    if whole:
        omitted = f"{len(text) - len(head) - len(tail):,} characters"
    else:
        omitted = f"about {size - len(head.encode()) - len(tail.encode()):,} bytes"
    return (
        f"{head.rstrip(NEWLINE)}\n\n[... {omitted} cut from the middle of the output; rerun "
        "with a filter (`| tail -n 100`, `| grep PATTERN`) to see other parts ...]\n\n"
        f"{tail}"
    )


# --- search ---------------------------------------------------------------------------------

# Not walked into unless the search starts inside them.
_SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
    }
)
_LINE_CHARS = 300  # of a matching line shown


_SEARCH_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from activities.claude.tools import _search_main; _search_main()"
)


class _SearchFailed(Exception):
    pass


class SearchTool:
    """A read-only search of the worktree for specialists granted Grep / Glob / LS.

    Regular expressions are Python's, and a pathological one can run for ages while holding
    the interpreter lock, so the search runs in a child Python process that is killed at
    `timeout_s`.
    """

    name = SEARCH_NAME
    definition: ClassVar[dict[str, Any]] = {
        "name": SEARCH_NAME,
        "description": (
            "Search the files of the worktree (read-only). With `pattern`, a regular "
            "expression (Python syntax, matched line by line), lists the matching lines as "
            "`path:line: text`. With only `glob`, lists the files whose paths match it. "
            "`path` narrows the search to a directory or a file (default: the whole "
            "worktree). `glob` filters files: `*.py` matches file names at any depth, "
            "`src/**/*.ts` matches paths relative to `path`, `*.{ts,tsx}` gives alternatives. "
            "Skips .git, node_modules, caches, binary and very large files. Results are "
            "capped: narrow the search when told there are more."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {
                    "type": "string",
                    "description": "Regular expression to find in file contents.",
                },
                "path": {
                    "type": "string",
                    "description": "Directory or file to search, relative to the worktree.",
                },
                "glob": {
                    "type": "string",
                    "description": "Only files whose paths match this glob, e.g. `*.py`.",
                },
                "ignore_case": {
                    "type": "boolean",
                    "description": "Match the pattern without regard to case.",
                },
            },
            "additionalProperties": False,
        },
    }

    def __init__(
        self,
        root: Path,
        *,
        max_results: int = 200,
        max_file_bytes: int = 1024 * 1024,
        timeout_s: float = 30.0,
        output_limit: int = 30_000,
    ) -> None:
        self.root = root.resolve()
        self.max_results = max_results
        self.max_file_bytes = max_file_bytes
        self.timeout_s = timeout_s
        self.output_limit = output_limit

    async def __call__(self, tool_input: object) -> ToolResult:
        try:
            request, shown = self._request(tool_input)
        except (_BadInput, PathOutsideWorkspace) as err:
            return _error(str(err))
        try:
            found = await self._run_search(request)
        except TimeoutError:
            return _error(
                f"the search timed out after {self.timeout_s:g} s and was stopped: use a "
                "simpler pattern or a narrower path or glob"
            )
        except (_SearchFailed, OSError, ValueError) as err:
            return _error(f"the search failed: {err}")
        return ToolResult(content=self._report(request, shown, found))

    def _request(self, tool_input: object) -> tuple[dict[str, Any], str]:
        data = _input_object(tool_input, SEARCH_NAME)
        pattern = _optional_str(data, "pattern")
        glob = _optional_str(data, "glob")
        shown = _optional_str(data, "path") or "."
        ignore_case = data.get("ignore_case", False)
        if not isinstance(ignore_case, bool):
            raise _BadInput(
                f"parameter `ignore_case` must be a boolean, got {_json_type(ignore_case)}"
            )
        if not pattern and not glob:
            raise _BadInput(
                "give `pattern` (a regular expression to find in files) and/or `glob` (to "
                "list or filter files by path)"
            )
        if pattern:
            try:
                re.compile(pattern, re.IGNORECASE if ignore_case else 0)
            except re.error as err:
                raise _BadInput(f"invalid regular expression {pattern!r}: {err}") from err
        if glob:
            _glob_regex(glob)
        target = resolve_inside(self.root, shown)
        if not target.exists():
            raise _BadInput(f"The path {shown} does not exist. Please provide a valid path.")
        request = {
            "root": str(self.root),
            "target": str(target),
            "pattern": pattern or None,
            "ignore_case": ignore_case,
            "glob": glob or None,
            "max_results": self.max_results,
            "max_file_bytes": self.max_file_bytes,
        }
        return request, shown

    async def _run_search(self, request: dict[str, Any]) -> dict[str, Any]:
        # Isolated (-I): nothing from the worktree (a `re.py`, say) or the environment can be
        # imported in place of ours; this package's folder is put on the path explicitly.
        package_root = str(Path(__file__).resolve().parents[2])
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            _SEARCH_CHILD,
            package_root,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=scrubbed_env(),
            cwd=self.root,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                out, err = await proc.communicate(json.dumps(request).encode())
        finally:
            if proc.returncode is None:  # timed out or cancelled
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.shield(proc.wait())
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise _SearchFailed(lines[-1] if lines else f"exit code {proc.returncode}")
        found: dict[str, Any] = json.loads(out)
        return found

    def _report(self, request: Mapping[str, Any], shown: str, found: Mapping[str, Any]) -> str:
        results: list[str] = found["results"]
        pattern = request["pattern"]
        glob = request["glob"]
        what = f"pattern {pattern!r}" if pattern else f"glob {glob!r}"
        if pattern and glob:
            what += f" in files matching {glob!r}"
        notes: list[str] = []
        if found["more"]:
            notes.append(
                f"[showing the first {self.max_results} results; there are more: narrow the "
                "pattern, path or glob]"
            )
        skipped = []
        if found["binary"]:
            skipped.append(f"{found['binary']} binary")
        if found["large"]:
            skipped.append(f"{found['large']} larger than {self.max_file_bytes:,} bytes")
        if skipped:
            notes.append(f"[files skipped: {', '.join(skipped)}]")
        if not results:
            searched = f" ({found['searched']} files searched)" if pattern else ""
            head = f"No {'matches' if pattern else 'files'} for {what} in {shown}{searched}."
            return "\n".join([head, *notes])
        body = "\n".join(results)
        if len(body) > self.output_limit:
            body = body[: self.output_limit].rsplit("\n", 1)[0]
            notes.insert(0, "[output cut: narrow the pattern, path or glob]")
        counted = "matching lines" if pattern else "files"
        summary = f"[{len(results)} {counted} for {what} in {shown}]"
        return "\n".join([body, "", summary, *notes])


def _glob_regex(glob: str) -> re.Pattern[str]:
    """A glob as a regex over "/"-separated relative paths: `*` and `?` stay within a folder,
    `**` crosses folders, `[...]` is a character class, `{a,b}` gives alternatives."""
    pattern = _clean_glob(glob)
    if not pattern:
        raise _BadInput("parameter `glob` is empty")
    try:
        return re.compile(_translate_glob(pattern) + r"\Z", re.DOTALL)
    except re.error as err:
        raise _BadInput(f"invalid glob {glob!r}: {err}") from err


def _clean_glob(glob: str) -> str:
    pattern = glob.strip()
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern.lstrip("/")


def _translate_glob(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        close = -1
        if char == "[":
            close = pattern.find("]", i + 2)  # a "]" right after "[" belongs to the class
        elif char == "{":
            close = pattern.find("}", i + 1)
        if close != -1 and char == "[":
            inner = pattern[i + 1 : close]
            if inner.startswith("!"):
                inner = "^" + inner[1:]
            out.append("[" + inner.replace("\\", "\\\\") + "]")
            i = close + 1
        elif close != -1:
            options = pattern[i + 1 : close].split(",")
            out.append("(?:" + "|".join(_translate_glob(option) for option in options) + ")")
            i = close + 1
        else:
            if char == "*":
                out.append("[^/]*")
            elif char == "?":
                out.append("[^/]")
            else:
                out.append(re.escape(char))
            i += 1
    return "".join(out)


def _search_main() -> None:
    """The child process of `SearchTool`: a JSON request on stdin, the JSON answer on stdout."""
    request = json.load(sys.stdin)
    json.dump(_search(request), sys.stdout)


def _search(request: Mapping[str, Any]) -> dict[str, Any]:
    root = Path(request["root"])
    target = Path(request["target"])
    pattern = request["pattern"]
    regex = re.compile(pattern, re.IGNORECASE if request["ignore_case"] else 0) if pattern else None
    max_results: int = request["max_results"]
    max_file_bytes: int = request["max_file_bytes"]
    results: list[str] = []
    more = False
    searched = binary = large = 0
    for path in _candidates(target, request["glob"]):
        real = path.resolve()
        if real != root and root not in real.parents:
            continue  # a symlink pointing out of the worktree
        try:
            info = real.stat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        shown = path.relative_to(root).as_posix()
        if regex is None:
            results.append(shown)
        elif info.st_size > max_file_bytes:
            large += 1
            continue
        else:
            try:
                data = real.read_bytes()
            except OSError:
                continue
            if b"\x00" in data[:_BINARY_SNIFF_BYTES]:
                binary += 1
                continue
            searched += 1
            text = data.decode("utf-8", errors="replace")
            for number, line in enumerate(text.split("\n"), start=1):
                if regex.search(line):
                    shown_line = line.rstrip("\r")
                    if len(shown_line) > _LINE_CHARS:
                        shown_line = shown_line[:_LINE_CHARS] + " ..."
                    results.append(f"{shown}:{number}: {shown_line}")
                    if len(results) > max_results:
                        break
        if len(results) > max_results:
            del results[max_results:]
            more = True
            break
    return {
        "results": results,
        "more": more,
        "searched": searched,
        "binary": binary,
        "large": large,
    }


def _candidates(target: Path, glob: str | None) -> Iterator[Path]:
    """Files under `target` in path order (the file itself when it is one), filtered by the
    glob: on the file name when the glob has no "/", else on the path relative to `target`."""
    if not target.is_dir():
        yield target
        return
    regex = _glob_regex(glob) if glob else None
    on_name = glob is not None and "/" not in _clean_glob(glob)
    for folder, dirs, files in os.walk(target):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(folder, name)
            if regex is not None:
                subject = name if on_name else path.relative_to(target).as_posix()
                if not regex.match(subject):
                    continue
            yield path
