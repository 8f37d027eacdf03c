"""The Anthropic-defined text editor (`text_editor_20250728`, name `str_replace_based_edit_tool`):
view / create / str_replace / insert in the worktree. Output formats and error texts follow
the ones Claude models are trained on (`cat -n` numbering, "No match found for replacement",
"Found N matches ...")."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from activities.claude.tools.base import (
    BINARY_SNIFF_BYTES,
    EDITOR_NAME,
    BadInput,
    PathOutsideWorkspace,
    ToolResult,
    as_int,
    as_str,
    encode_utf8,
    error_result,
    input_object,
    optional_str,
    required_str,
    resolve_inside,
)

DEFAULT_MAX_VIEW_CHARS = 16_000
_READ_CHUNK = 1 << 20  # a line longer than this is read in pieces
_SNIPPET_CONTEXT = 4  # lines shown around an edit


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
            return error_result(f"the editor failed: {type(err).__name__}: {err}")

    def _run(self, tool_input: object) -> ToolResult:
        command = "?"
        shown = "?"
        try:
            data = input_object(tool_input, EDITOR_NAME)
            command = required_str(data, "command", "(view, create, str_replace or insert)")
            handlers = {
                "view": self._view,
                "create": self._create,
                "str_replace": self._str_replace,
                "insert": self._insert,
            }
            if command == "undo_edit":
                raise BadInput(
                    "undo_edit is not available in this version of the editor; to revert a "
                    "change, str_replace the text back"
                )
            handler = handlers.get(command)
            if handler is None:
                raise BadInput(
                    f"unknown command {command!r}: use view, create, str_replace or insert"
                )
            if command != "view" and not self.allow_write:
                return error_result(
                    f"this specialist may not change files ({self._tools}); "
                    f"`{command}` was refused. Report what should change instead."
                )
            shown = required_str(data, "path", f"for command `{command}`")
            return handler(data, shown)
        except (BadInput, PathOutsideWorkspace) as err:
            return error_result(str(err))
        except OSError as err:
            return error_result(f"{command} {shown} failed: {err.strerror or err}")

    # --- view ---

    def _view(self, data: Mapping[str, Any], shown: str) -> ToolResult:
        target = resolve_inside(self.root, shown)
        view_range = data.get("view_range")
        if not target.exists():
            raise BadInput(f"The path {shown} does not exist. Please provide a valid path.")
        if target.is_dir():
            if view_range is not None:
                raise BadInput(
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
            raise BadInput(
                f"Invalid `view_range`: its first element `{start}` should be within the range "
                f"of lines of the file: [1, {total}]"
            )
        notes = self._view_notes(size, start, end, last, total, ranged=ranged)
        if undecodable:
            notes.append("[the file is not valid UTF-8: undecodable bytes are shown as \ufffd]")
        content = f"Here's the result of running `cat -n` on {shown}:\n" + "\n".join(lines)
        if notes:
            content += "\n\n" + "\n".join(notes)
        return ToolResult(content=content)

    # --- changes ---

    def _view_notes(
        self, size: int, start: int, end: int | None, last: int, total: int, *, ranged: bool
    ) -> list[str]:
        """What a view says under the lines: how to see more, or how long the file is."""
        wanted_end = total if end is None else min(end, total)
        if last < wanted_end:
            more_end = min(total, last + max(1, last - start + 1))
            why = (
                f"the file is large ({size:,} bytes)"
                if size > self.max_file_bytes
                else f"a view shows at most {self.max_view_chars:,} characters"
            )
            return [
                f"[showing lines {start}-{last} of {total}; {why}: use view_range, e.g. "
                f"[{last + 1}, {more_end}], to see more]"
            ]
        if ranged and end is not None and end > total:
            return [f"[the file has {total} lines]"]
        return []

    def _create(self, data: Mapping[str, Any], shown: str) -> ToolResult:
        file_text = required_str(data, "file_text", "for command `create` (the file's content)")
        content = encode_utf8(file_text, "file_text")
        target = resolve_inside(self.root, shown, write=True)
        if target.is_dir():
            raise BadInput(f"{shown} is a directory; give the path of a file to create")
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
        old = required_str(data, "old_str", "for command `str_replace` (the text to replace)")
        new = optional_str(data, "new_str") or ""
        if not old:
            raise BadInput(
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
            raise BadInput(
                f"No match found for replacement: `old_str` did not appear verbatim in "
                f"{shown}{hint}. Please check your text and try again."
            )
        if len(positions) > 1:
            numbers = ", ".join(str(text.count("\n", 0, at) + 1) for at in positions[:20])
            raise BadInput(
                f"Found {len(positions)} matches for replacement text in {shown} (at lines "
                f"{numbers}). Please provide more context in `old_str` to make a unique match."
            )
        if old == new:
            raise BadInput("`old_str` and `new_str` are the same: nothing to change")
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
            raise BadInput(
                "missing required parameter `insert_line` for command `insert` (the line to "
                "insert after; 0 = at the top of the file)"
            )
        line = as_int(data["insert_line"], "insert_line")
        key = "insert_text" if data.get("insert_text") is not None else "new_str"
        if data.get(key) is None:
            raise BadInput("missing required parameter `insert_text` for command `insert`")
        insert_text = as_str(data[key], key)
        if not insert_text:
            raise BadInput(f"`{key}` is empty: nothing to insert")
        target = resolve_inside(self.root, shown, write=True)
        document = self._load(target, shown)
        lines = _split_lines(document.text)
        if not 0 <= line <= len(lines):
            raise BadInput(
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
            raise BadInput(f"{shown} is not a regular file")
        return info.st_size

    def _refuse_binary(self, target: Path, shown: str, size: int) -> None:
        with target.open("rb") as f:
            head = f.read(BINARY_SNIFF_BYTES)
        if b"\x00" in head:
            raise BadInput(
                f"{shown} is a binary file ({size:,} bytes); the editor shows and changes text "
                "files only"
            )

    def _load(self, target: Path, shown: str) -> _Text:
        if not target.exists():
            raise BadInput(
                f"The path {shown} does not exist. Please provide a valid path (use create to "
                "make a new file)."
            )
        if target.is_dir():
            raise BadInput(f"{shown} is a directory; give the path of a file")
        size = self._regular_file_size(target, shown)
        if size > self.max_edit_bytes:
            raise BadInput(
                f"{shown} is too large for the editor to change ({size:,} bytes, the limit is "
                f"{self.max_edit_bytes:,})"
            )
        self._refuse_binary(target, shown, size)
        try:
            text = target.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise BadInput(
                f"{shown} is not UTF-8 text (byte {err.start}); the editor cannot change it "
                "without damaging it"
            ) from err
        crlf = "\r\n" in text and text.count("\r\n") == text.count("\n")
        return _Text(text.replace("\r\n", "\n") if crlf else text, crlf)

    def _save(self, target: Path, document: _Text, text: str, key: str) -> None:
        content = encode_utf8(text.replace("\n", "\r\n") if document.crlf else text, key)
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
        raise BadInput(
            "Invalid `view_range`: it should be a list of two integers [start, end], "
            f"1-based, end -1 for the end of the file; got {json.dumps(value, default=str)}"
        )
    start = as_int(value[0], "view_range[0]")
    end = as_int(value[1], "view_range[1]")
    if start < 1:
        raise BadInput(f"Invalid `view_range`: its first element `{start}` should be 1 or more")
    if end == -1:
        return start, None
    if end < start:
        raise BadInput(
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
