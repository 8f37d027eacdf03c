"""The Claude specialist's tools on real worktrees: the text editor, bash and search, their
confinement to the worktree, and the permissions a specialist's `tools:` grant."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from activities.claude.tools import (
    BASH_TYPE,
    EDITOR_NAME,
    EDITOR_TYPE,
    BashTool,
    EditorTool,
    PathOutsideWorkspace,
    SearchTool,
    ToolResult,
    permissions_for,
    resolve_inside,
    tool_definitions,
)
from coordinator.specialists import load_specialist_file, parse_specialist

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "app.py").write_text("def main():\n    print('hello')\n    return 0\n")
    (root / "src" / "pkg" / "util.py").write_text("VALUE = 1\n")
    (root / "README.md").write_text("# Demo\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("TOP SECRET\n")
    return folder


def editor(root: Path, **kwargs: Any) -> EditorTool:
    kwargs.setdefault("allow_write", True)
    return EditorTool(root, **kwargs)


async def ok(tool: Any, tool_input: object) -> str:
    result = await tool(tool_input)
    assert isinstance(result, ToolResult)
    assert not result.is_error, result.content
    return result.content


async def error(tool: Any, tool_input: object) -> str:
    result = await tool(tool_input)
    assert isinstance(result, ToolResult)
    assert result.is_error, result.content
    return result.content


# --- editor: view ---------------------------------------------------------------------------


async def test_view_numbers_lines_like_cat_n(worktree: Path) -> None:
    content = await ok(editor(worktree), {"command": "view", "path": "src/app.py"})
    assert content == (
        "Here's the result of running `cat -n` on src/app.py:\n"
        "     1\tdef main():\n"
        "     2\t    print('hello')\n"
        "     3\t    return 0"
    )


async def test_view_accepts_absolute_paths_inside(worktree: Path) -> None:
    path = str(worktree / "src" / "pkg" / "util.py")
    content = await ok(editor(worktree), {"command": "view", "path": path})
    assert content.endswith("     1\tVALUE = 1")


async def test_view_range(worktree: Path) -> None:
    (worktree / "ten.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    tool = editor(worktree)
    content = await ok(tool, {"command": "view", "path": "ten.txt", "view_range": [3, 5]})
    assert content.splitlines()[1:] == ["     3\tline 3", "     4\tline 4", "     5\tline 5"]
    content = await ok(tool, {"command": "view", "path": "ten.txt", "view_range": [9, -1]})
    assert content.splitlines()[1:] == ["     9\tline 9", "    10\tline 10"]
    # An end past the last line shows to the end and says how long the file is.
    content = await ok(tool, {"command": "view", "path": "ten.txt", "view_range": [10, 50]})
    assert "    10\tline 10" in content
    assert "[the file has 10 lines]" in content


@pytest.mark.parametrize(
    ("view_range", "message"),
    [
        ([0, 3], "should be 1 or more"),
        ([11, -1], "should be within the range of lines of the file: [1, 10]"),
        ([5, 2], "should be larger or equal than its first `5`"),
        ([1], "a list of two integers"),
        ("1-3", "a list of two integers"),
        ([1, "3"], "`view_range[1]` must be an integer, got a string"),
        ([True, 3], "`view_range[0]` must be an integer, got a boolean"),
    ],
)
async def test_view_range_errors(worktree: Path, view_range: object, message: str) -> None:
    (worktree / "ten.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    tool_input = {"command": "view", "path": "ten.txt", "view_range": view_range}
    assert message in await error(editor(worktree), tool_input)


async def test_view_directory_lists_two_levels_without_hidden_items(worktree: Path) -> None:
    (worktree / "src" / "pkg" / "deep").mkdir()
    (worktree / "src" / "pkg" / "deep" / "hidden_too_deep.py").write_text("")
    (worktree / "src" / ".cache").mkdir()
    content = await ok(editor(worktree), {"command": "view", "path": "."})
    lines = content.splitlines()
    assert lines[0] == (
        "Here's the files and directories up to 2 levels deep in ., excluding hidden items:"
    )
    assert lines[1:] == ["README.md", "src/", "src/app.py", "src/pkg/"]
    content = await ok(editor(worktree), {"command": "view", "path": "src"})
    assert content.splitlines()[1:] == [
        "src/app.py",
        "src/pkg/",
        "src/pkg/deep/",
        "src/pkg/util.py",
    ]
    message = await error(
        editor(worktree), {"command": "view", "path": "src", "view_range": [1, 2]}
    )
    assert "not allowed when `path` points to a directory" in message
    content = await ok(editor(worktree, max_view_chars=25), {"command": "view", "path": "."})
    assert content.splitlines()[1:] == [
        "README.md",
        "src/",
        "",
        "[listing cut after 2 entries; view a subdirectory to see more]",
    ]


async def test_view_missing_and_empty_files(worktree: Path) -> None:
    message = await error(editor(worktree), {"command": "view", "path": "src/nope.py"})
    assert message == "The path src/nope.py does not exist. Please provide a valid path."
    (worktree / "empty.txt").write_text("")
    content = await ok(editor(worktree), {"command": "view", "path": "empty.txt"})
    assert content == "The file empty.txt is empty."


async def test_large_file_is_viewed_in_ranges(worktree: Path) -> None:
    lines = [f"row {n:05d} " + "x" * 40 for n in range(1, 5001)]  # about 250 KB
    (worktree / "big.txt").write_text("\n".join(lines) + "\n")
    tool = editor(worktree, max_file_bytes=64 * 1024, max_view_chars=4000)
    content = await ok(tool, {"command": "view", "path": "big.txt"})
    match = re.search(
        r"\[showing lines 1-(\d+) of 5000; the file is large \(([\d,]+) bytes\)", content
    )
    assert match, content
    last = int(match.group(1))
    assert 50 < last < 100
    assert int(match.group(2).replace(",", "")) == (worktree / "big.txt").stat().st_size
    assert f"use view_range, e.g. [{last + 1}, " in content
    assert len(content) < 4000 + 300
    assert f"{last:6}\t{lines[last - 1]}" in content
    assert f"{last + 1:6}\t" not in content
    # The next range continues where the first stopped.
    content = await ok(tool, {"command": "view", "path": "big.txt", "view_range": [last + 1, -1]})
    assert content.splitlines()[1] == f"{last + 1:6}\t{lines[last]}"
    content = await ok(tool, {"command": "view", "path": "big.txt", "view_range": [4999, -1]})
    assert content.splitlines()[1:] == [f"  4999\t{lines[4998]}", f"  5000\t{lines[4999]}"]


async def test_long_view_of_a_small_file_is_cut_with_a_note(worktree: Path) -> None:
    (worktree / "many.txt").write_text("".join(f"{n}\n" for n in range(1, 401)))
    content = await ok(
        editor(worktree, max_view_chars=500), {"command": "view", "path": "many.txt"}
    )
    assert re.search(r"\[showing lines 1-\d+ of 400; a view shows at most 500 characters", content)


async def test_a_huge_single_line_is_cut(worktree: Path) -> None:
    (worktree / "min.js").write_text("a" * 100_000 + "\nsecond\n")
    content = await ok(editor(worktree, max_view_chars=1000), {"command": "view", "path": "min.js"})
    assert "[line 1 cut: 100,001 bytes in all]" in content
    assert "showing lines 1-1 of 2" in content
    assert len(content) < 1500


async def test_binary_files_are_refused(worktree: Path) -> None:
    (worktree / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    tool = editor(worktree)
    message = await error(tool, {"command": "view", "path": "logo.png"})
    assert "logo.png is a binary file (216 bytes)" in message
    message = await error(
        tool, {"command": "str_replace", "path": "logo.png", "old_str": "PNG", "new_str": "X"}
    )
    assert "binary file" in message
    assert (worktree / "logo.png").read_bytes().startswith(b"\x89PNG")


async def test_non_utf8_text_is_shown_but_not_changed(worktree: Path) -> None:
    (worktree / "latin.txt").write_bytes("café\n".encode("latin-1"))
    tool = editor(worktree)
    content = await ok(tool, {"command": "view", "path": "latin.txt"})
    assert "caf\ufffd" in content
    assert "not valid UTF-8" in content
    message = await error(
        tool, {"command": "insert", "path": "latin.txt", "insert_line": 0, "insert_text": "x"}
    )
    assert "not UTF-8 text" in message


async def test_a_fifo_is_refused_without_blocking(worktree: Path) -> None:
    os.mkfifo(worktree / "pipe")
    message = await error(editor(worktree), {"command": "view", "path": "pipe"})
    assert message == "pipe is not a regular file"


# --- editor: changes ------------------------------------------------------------------------


async def test_create_writes_new_files_and_overwrites(worktree: Path) -> None:
    tool = editor(worktree)
    content = await ok(
        tool, {"command": "create", "path": "src/new/mod.py", "file_text": "A = 1\n"}
    )
    assert content == "File created successfully at: src/new/mod.py"
    assert (worktree / "src" / "new" / "mod.py").read_text() == "A = 1\n"
    content = await ok(tool, {"command": "create", "path": "README.md", "file_text": "# New\n"})
    assert content.startswith("File overwritten at: README.md")
    assert (worktree / "README.md").read_text() == "# New\n"
    message = await error(tool, {"command": "create", "path": "src", "file_text": "x"})
    assert "src is a directory" in message
    assert tool.changed_files == ["src/new/mod.py", "README.md"]


async def test_str_replace_needs_exactly_one_match(worktree: Path) -> None:
    path = worktree / "src" / "app.py"
    before = path.read_text()
    tool = editor(worktree)
    message = await error(
        tool, {"command": "str_replace", "path": "src/app.py", "old_str": "goodbye", "new_str": "x"}
    )
    assert message.startswith("No match found for replacement")
    assert "did not appear verbatim in src/app.py" in message
    message = await error(
        tool, {"command": "str_replace", "path": "src/app.py", "old_str": "    ", "new_str": "\t"}
    )
    assert message.startswith("Found 2 matches for replacement text in src/app.py (at lines 2, 3)")
    assert "more context" in message
    assert path.read_text() == before
    assert tool.changed_files == []

    content = await ok(
        tool,
        {
            "command": "str_replace",
            "path": "src/app.py",
            "old_str": "print('hello')",
            "new_str": "print('hello')\n    print('world')",
        },
    )
    assert path.read_text() == (
        "def main():\n    print('hello')\n    print('world')\n    return 0\n"
    )
    assert content == (
        "The file src/app.py has been edited. Here's the result of running `cat -n` on a "
        "snippet of src/app.py:\n"
        "     1\tdef main():\n"
        "     2\t    print('hello')\n"
        "     3\t    print('world')\n"
        "     4\t    return 0\n"
        "Review the changes and make sure they are as expected. Edit the file again if "
        "necessary."
    )
    assert tool.changed_files == ["src/app.py"]


async def test_str_replace_details(worktree: Path) -> None:
    path = worktree / "src" / "app.py"
    tool = editor(worktree)
    # Overlapping occurrences are ambiguous too.
    (worktree / "aaa.txt").write_text("aaa\n")
    message = await error(
        tool, {"command": "str_replace", "path": "aaa.txt", "old_str": "aa", "new_str": "b"}
    )
    assert message.startswith("Found 2 matches")
    # Whitespace around old_str that is not in the file gets a hint.
    message = await error(
        tool,
        {"command": "str_replace", "path": "src/app.py", "old_str": "return 0  ", "new_str": ""},
    )
    assert "leading and trailing whitespace" in message
    message = await error(
        tool, {"command": "str_replace", "path": "src/app.py", "old_str": "", "new_str": "x"}
    )
    assert "`old_str` is empty" in message
    message = await error(
        tool,
        {"command": "str_replace", "path": "src/app.py", "old_str": "main", "new_str": "main"},
    )
    assert "the same" in message
    # new_str left out deletes the text.
    await ok(tool, {"command": "str_replace", "path": "src/app.py", "old_str": "    return 0\n"})
    assert path.read_text() == "def main():\n    print('hello')\n"
    message = await error(
        tool, {"command": "str_replace", "path": "src/missing.py", "old_str": "a", "new_str": "b"}
    )
    assert "does not exist" in message


async def test_crlf_files_keep_their_line_ends(worktree: Path) -> None:
    path = worktree / "win.txt"
    path.write_bytes(b"one\r\ntwo\r\nthree\r\n")
    tool = editor(worktree)
    content = await ok(tool, {"command": "view", "path": "win.txt"})
    assert "     2\ttwo\n" in content and "\r" not in content
    await ok(
        tool,
        {"command": "str_replace", "path": "win.txt", "old_str": "one\ntwo", "new_str": "1\n2"},
    )
    await ok(tool, {"command": "insert", "path": "win.txt", "insert_line": 3, "insert_text": "4"})
    assert path.read_bytes() == b"1\r\n2\r\nthree\r\n4\r\n"


async def test_insert_at_top_middle_and_end(worktree: Path) -> None:
    path = worktree / "list.txt"
    path.write_text("a\nb\n")
    tool = editor(worktree)
    content = await ok(
        tool, {"command": "insert", "path": "list.txt", "insert_line": 0, "insert_text": "top\n"}
    )
    assert path.read_text() == "top\na\nb\n"
    assert content.startswith(
        "The file list.txt has been edited. Here's the result of running `cat -n` on a snippet "
        "of the edited file:\n     1\ttop\n     2\ta\n     3\tb\n"
    )
    await ok(
        tool, {"command": "insert", "path": "list.txt", "insert_line": 3, "insert_text": "end"}
    )
    assert path.read_text() == "top\na\nb\nend\n"
    # The older parameter name `new_str` works too; several lines at once.
    await ok(tool, {"command": "insert", "path": "list.txt", "insert_line": 1, "new_str": "x\ny"})
    assert path.read_text() == "top\nx\ny\na\nb\nend\n"
    for line in (-1, 7):
        message = await error(
            tool, {"command": "insert", "path": "list.txt", "insert_line": line, "insert_text": "z"}
        )
        assert message == (
            f"Invalid `insert_line` parameter: {line}. It should be within the range of lines "
            "of the file: [0, 6]"
        )
    assert tool.changed_files == ["list.txt"]


async def test_insert_keeps_a_missing_final_newline_missing(worktree: Path) -> None:
    path = worktree / "nonl.txt"
    path.write_text("a\nb")
    tool = editor(worktree)
    await ok(tool, {"command": "insert", "path": "nonl.txt", "insert_line": 2, "insert_text": "c"})
    assert path.read_text() == "a\nb\nc"
    (worktree / "empty.txt").write_text("")
    await ok(tool, {"command": "insert", "path": "empty.txt", "insert_line": 0, "insert_text": "x"})
    assert (worktree / "empty.txt").read_text() == "x\n"


async def test_view_only_editor_refuses_every_change(worktree: Path) -> None:
    tool = EditorTool(worktree, allow_write=False, tools=["Read", "Grep", "Glob"])
    before = (worktree / "src" / "app.py").read_text()
    attempts: list[dict[str, Any]] = [
        {"command": "create", "path": "new.py", "file_text": "x"},
        {"command": "str_replace", "path": "src/app.py", "old_str": "main", "new_str": "run"},
        {"command": "insert", "path": "src/app.py", "insert_line": 0, "insert_text": "x"},
    ]
    for attempt in attempts:
        message = await error(tool, attempt)
        assert message.startswith(
            "this specialist may not change files (tools: Read, Grep, Glob); "
            f"`{attempt['command']}` was refused"
        )
    assert not (worktree / "new.py").exists()
    assert (worktree / "src" / "app.py").read_text() == before
    assert tool.changed_files == []
    assert "def main()" in await ok(tool, {"command": "view", "path": "src/app.py"})
    message = await error(EditorTool(worktree, allow_write=False), attempts[0])
    assert message.startswith("this specialist may not change files (no Write or Edit tool)")


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        (None, "takes a JSON object as input, got null"),
        ([], "takes a JSON object as input, got an array"),
        ("view src/app.py", "takes a JSON object as input, got a string"),
        ({}, "missing required parameter `command`"),
        ({"command": 3}, "`command` must be a string, got a number"),
        ({"command": "delete", "path": "a"}, "unknown command 'delete'"),
        ({"command": "undo_edit", "path": "src/app.py"}, "undo_edit is not available"),
        ({"command": "view"}, "missing required parameter `path` for command `view`"),
        ({"command": "view", "path": None}, "missing required parameter `path`"),
        ({"command": "view", "path": ["a"]}, "`path` must be a string, got an array"),
        ({"command": "view", "path": ""}, "the path is empty"),
        ({"command": "create", "path": "a.py"}, "missing required parameter `file_text`"),
        ({"command": "create", "path": "a.py", "file_text": 1}, "`file_text` must be a string"),
        ({"command": "str_replace", "path": "src/app.py"}, "missing required parameter `old_str`"),
        (
            {"command": "str_replace", "path": "src/app.py", "old_str": "main", "new_str": 2},
            "`new_str` must be a string, got a number",
        ),
        (
            {"command": "insert", "path": "src/app.py", "insert_text": "x"},
            "missing required parameter `insert_line`",
        ),
        (
            {"command": "insert", "path": "src/app.py", "insert_line": "1", "insert_text": "x"},
            "`insert_line` must be an integer, got a string",
        ),
        (
            {"command": "insert", "path": "src/app.py", "insert_line": 1.5, "insert_text": "x"},
            "`insert_line` must be an integer, got a number",
        ),
        (
            {"command": "insert", "path": "src/app.py", "insert_line": 1},
            "missing required parameter `insert_text`",
        ),
        (
            {"command": "create", "path": "a.py", "file_text": "\ud800"},
            "cannot be written as UTF-8",
        ),
    ],
)
async def test_malformed_editor_input_gets_an_error_result(
    worktree: Path, tool_input: object, message: str
) -> None:
    before = (worktree / "src" / "app.py").read_text()
    assert message in await error(editor(worktree), tool_input)
    assert (worktree / "src" / "app.py").read_text() == before
    assert not (worktree / "a.py").exists()


# --- confinement ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["../outside/secret.txt", "src/../../outside/secret.txt", "new/dir/../../../x"]
)
async def test_dot_dot_escapes_are_refused(worktree: Path, outside: Path, path: str) -> None:
    tool = editor(worktree)
    message = await error(tool, {"command": "view", "path": path})
    assert f"the path {path} is outside the worktree" in message
    assert "TOP SECRET" not in message
    message = await error(tool, {"command": "create", "path": path, "file_text": "pwned"})
    assert "outside the worktree" in message
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"
    assert not (worktree.parent / "x").exists()


async def test_absolute_paths_elsewhere_are_refused(worktree: Path, outside: Path) -> None:
    tool = editor(worktree)
    for path in ("/etc/passwd", str(outside / "secret.txt"), "/"):
        message = await error(tool, {"command": "view", "path": path})
        assert f"the path {path} is outside the worktree" in message
    message = await error(
        tool,
        {"command": "str_replace", "path": str(outside / "secret.txt"), "old_str": "TOP"},
    )
    assert "outside the worktree" in message
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"


async def test_symlinked_file_pointing_out_is_refused(worktree: Path, outside: Path) -> None:
    (worktree / "notes.txt").symlink_to(outside / "secret.txt")
    tool = editor(worktree)
    message = await error(tool, {"command": "view", "path": "notes.txt"})
    assert "outside the worktree" in message
    assert str(outside / "secret.txt") in message
    assert "TOP SECRET" not in message
    for attempt in (
        {"command": "create", "path": "notes.txt", "file_text": "pwned"},
        {"command": "str_replace", "path": "notes.txt", "old_str": "TOP", "new_str": "NO"},
        {"command": "insert", "path": "notes.txt", "insert_line": 0, "insert_text": "x"},
    ):
        assert "outside the worktree" in await error(tool, attempt)
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"
    # A dangling link pointing out cannot be used to create the file outside either.
    (worktree / "dangling").symlink_to(outside / "created.txt")
    assert "outside the worktree" in await error(
        tool, {"command": "create", "path": "dangling", "file_text": "x"}
    )
    assert not (outside / "created.txt").exists()


async def test_symlinked_directory_pointing_out_is_refused(worktree: Path, outside: Path) -> None:
    (worktree / "docs").symlink_to(outside, target_is_directory=True)
    tool = editor(worktree)
    for attempt in (
        {"command": "view", "path": "docs"},
        {"command": "view", "path": "docs/secret.txt"},
        {"command": "create", "path": "docs/new.txt", "file_text": "x"},
        {"command": "create", "path": "docs/sub/new.txt", "file_text": "x"},
    ):
        assert "outside the worktree" in await error(tool, attempt)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    # Listed in its parent, but not entered.
    listing = await ok(tool, {"command": "view", "path": "."})
    assert "docs" in listing.splitlines()
    assert "secret.txt" not in listing


async def test_paths_through_a_symlinked_directory_inside_are_fine(worktree: Path) -> None:
    (worktree / "alias").symlink_to(worktree / "src", target_is_directory=True)
    tool = editor(worktree)
    assert "VALUE = 1" in await ok(tool, {"command": "view", "path": "alias/pkg/util.py"})
    await ok(
        tool,
        {"command": "str_replace", "path": "alias/pkg/util.py", "old_str": "1", "new_str": "2"},
    )
    assert (worktree / "src" / "pkg" / "util.py").read_text() == "VALUE = 2\n"
    assert tool.changed_files == ["src/pkg/util.py"]  # the real path


async def test_worktree_reached_through_a_symlink(tmp_path: Path, worktree: Path) -> None:
    link = tmp_path / "link-to-wt"
    link.symlink_to(worktree, target_is_directory=True)
    tool = editor(link)
    assert "VALUE = 1" in await ok(tool, {"command": "view", "path": str(link / "src/pkg/util.py")})
    assert resolve_inside(link, "src") == (worktree / "src").resolve()


async def test_writes_into_git_are_refused(worktree: Path) -> None:
    tool = editor(worktree)
    for attempt in (
        {"command": "create", "path": ".git/hooks/pre-commit", "file_text": "#!/bin/sh\n"},
        {"command": "str_replace", "path": ".git/config", "old_str": "core", "new_str": "x"},
        {"command": "insert", "path": "src/../.git/config", "insert_line": 0, "insert_text": "x"},
    ):
        assert "inside .git" in await error(tool, attempt)
    assert not (worktree / ".git" / "hooks").exists()
    assert (worktree / ".git" / "config").read_text() == "[core]\n"
    # Reading is fine.
    assert "[core]" in await ok(tool, {"command": "view", "path": ".git/config"})
    # A linked worktree's `.git` is a file, refused the same way; so is a link into .git.
    (worktree / "sub").mkdir()
    (worktree / "sub" / ".git").write_text("gitdir: /elsewhere\n")
    (worktree / "gitlink").symlink_to(worktree / ".git", target_is_directory=True)
    assert "inside .git" in await error(
        tool, {"command": "create", "path": "sub/.git", "file_text": "x"}
    )
    assert "inside .git" in await error(
        tool, {"command": "create", "path": "gitlink/HEAD", "file_text": "x"}
    )


def test_resolve_inside(worktree: Path, outside: Path) -> None:
    real = worktree.resolve()
    assert resolve_inside(worktree, ".") == real
    assert resolve_inside(worktree, "src/../README.md") == real / "README.md"
    assert resolve_inside(worktree, "not/yet/there.py") == real / "not/yet/there.py"
    assert resolve_inside(worktree, str(real / "src")) == real / "src"
    (worktree / "loop").symlink_to(worktree / "loop")
    with pytest.raises(PathOutsideWorkspace, match="loop/x cannot be resolved"):
        resolve_inside(worktree, "loop/x")
    with pytest.raises(PathOutsideWorkspace, match="NUL"):
        resolve_inside(worktree, "a\x00b")
    with pytest.raises(PathOutsideWorkspace, match=r"\.\./outside is outside the worktree"):
        resolve_inside(worktree, "../outside")
    with pytest.raises(PathOutsideWorkspace, match=r"inside \.git"):
        resolve_inside(worktree, ".GIT/config", write=True)


# --- bash -----------------------------------------------------------------------------------


def bash(root: Path, tmp_path: Path, **kwargs: Any) -> BashTool:
    kwargs.setdefault("env", dict(os.environ))
    return BashTool(root, log_dir=tmp_path / "logs", **kwargs)


async def test_bash_runs_in_the_worktree_in_a_fresh_shell(worktree: Path, tmp_path: Path) -> None:
    tool = bash(worktree, tmp_path)
    content = await ok(tool, {"command": "pwd && touch made.txt && cd src && export X=1 && pwd"})
    assert content.splitlines() == [str(worktree.resolve()), str(worktree.resolve() / "src")]
    assert (worktree / "made.txt").exists()
    # The next command starts over: back in the worktree, no X.
    content = await ok(tool, {"command": 'pwd; echo "X=${X:-unset}"'})
    assert content.splitlines() == [str(worktree.resolve()), "X=unset"]
    assert await ok(tool, {"restart": True}) == "tool has been restarted."
    if tool.shell.endswith("bash"):
        assert await ok(tool, {"command": "echo ${BASH_VERSION:+bash}"}) == "bash"


async def test_bash_environment_is_scrubbed(
    worktree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "ANTHROPIC_API_KEY": "fake-anthropic-key-value-that-must-not-leak",
        "GITHUB_TOKEN": "fake-github-token-value-that-must-not-leak",
        "TEMPORAL_API_KEY": "temporal-key-value-must-not-leak",
        "DEPLOY_CREDENTIAL": "custom-credential-value-xyz",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    # The caller forgot to scrub: the tool scrubs again, with the settings' extra names too.
    tool = bash(worktree, tmp_path, env=dict(os.environ), secret_names=["deploy_credential"])
    content = await ok(tool, {"command": "env"})
    assert "HARMLESS_SETTING=visible" in content
    for name, value in secrets.items():
        assert name not in content
        assert value not in content
    # A secret value that reaches the output another way is redacted.
    (worktree / "leak.txt").write_text(f"key={secrets['GITHUB_TOKEN']}\n")
    assert await ok(tool, {"command": "cat leak.txt"}) == "key=[redacted]"


async def test_bash_timeout_kills_the_process_group(worktree: Path, tmp_path: Path) -> None:
    tool = bash(worktree, tmp_path, timeout_s=1)
    started = time.monotonic()
    result = await tool({"command": "sleep 60 & echo $! > bg.pid; echo started; sleep 60"})
    assert result.is_error
    assert result.content == "started\n\ntimed out after 1 s; the process group was killed"
    assert time.monotonic() - started < 10
    background = int((worktree / "bg.pid").read_text())
    assert not _running(background)


async def test_cancelled_bash_command_leaves_nothing_running(
    worktree: Path, tmp_path: Path
) -> None:
    tool = bash(worktree, tmp_path)
    command = "sleep 60 & echo $! > bg.pid; sleep 60"
    with pytest.raises(TimeoutError):  # wait_for cancels the tool call
        await asyncio.wait_for(tool({"command": command}), timeout=1)
    assert not _running(int((worktree / "bg.pid").read_text()))


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"  # a zombie is dead


async def test_bash_output_is_cut_to_head_and_tail(worktree: Path, tmp_path: Path) -> None:
    tool = bash(worktree, tmp_path, output_limit=20_000)
    content = await ok(tool, {"command": "seq 1 20000"})  # 108,894 characters
    assert content.startswith("1\n2\n3\n")
    assert content.endswith("19999\n20000")
    head, note, tail = re.split(r"\n\n(\[\.\.\. .*? \.\.\.\])\n\n", content)
    assert note.startswith("[... ")
    assert "characters cut from the middle of the output; rerun with a filter" in note
    full = "".join(f"{n}\n" for n in range(1, 20001))
    # Whole lines only; the final newline is not shown.
    assert full.startswith(head + "\n") and full.endswith(tail + "\n")
    assert 19_000 < len(head) + len(tail) <= 20_000
    omitted = int(note.split()[1].replace(",", ""))
    assert omitted == len(full) - len(head + "\n") - len(tail + "\n")
    # The full output is in the command's log.
    logs = sorted((tmp_path / "logs").iterdir())
    assert [log.name for log in logs] == ["bash-0001.log"]
    assert logs[0].read_text() == full


async def test_bash_huge_output_reads_only_the_ends(worktree: Path, tmp_path: Path) -> None:
    tool = bash(worktree, tmp_path, output_limit=500)
    content = await ok(
        tool, {"command": "echo first; head -c 2000000 /dev/zero | tr '\\0' a; echo; echo last"}
    )
    assert content.startswith("first\naaa")
    assert content.endswith("aaa\nlast")
    assert "about 1,99" in content and "bytes cut from the middle" in content


async def test_bash_exit_codes_and_stderr(worktree: Path, tmp_path: Path) -> None:
    tool = bash(worktree, tmp_path)
    content = await ok(tool, {"command": "echo out; echo err >&2; exit 3"})
    assert content == "out\nerr\n\nexit code 3"
    assert await ok(tool, {"command": "true"}) == "(no output)"
    assert await ok(tool, {"command": "false"}) == "(no output)\n\nexit code 1"
    assert (await ok(tool, {"command": "kill -9 $$"})).endswith("killed by signal SIGKILL")


async def test_bash_logs_one_file_per_command_and_keeps_old_ones(
    worktree: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "bash-0001.log").write_text("from the attempt before the crash\n")
    tool = bash(worktree, tmp_path)
    await ok(tool, {"command": "echo one"})
    await ok(tool, {"command": "echo two"})
    assert (logs / "bash-0001.log").read_text() == "from the attempt before the crash\n"
    assert (logs / "bash-0002.log").read_text() == "one\n"
    assert (logs / "bash-0003.log").read_text() == "two\n"
    assert tool.commands_run == 2


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        (None, "takes a JSON object as input, got null"),
        (["ls"], "takes a JSON object as input, got an array"),
        ({}, "missing required parameter `command`"),
        ({"restart": "yes"}, "missing required parameter `command`"),
        ({"command": 5}, "`command` must be a string, got a number"),
        ({"command": "   "}, "`command` is empty"),
    ],
)
async def test_malformed_bash_input_gets_an_error_result(
    worktree: Path, tmp_path: Path, tool_input: object, message: str
) -> None:
    assert message in await error(bash(worktree, tmp_path), tool_input)
    assert not (tmp_path / "logs").exists()


async def test_bash_in_a_missing_worktree_is_an_error_result(tmp_path: Path) -> None:
    tool = bash(tmp_path / "gone", tmp_path)
    assert "cannot run" in await error(tool, {"command": "ls"})


# --- search ---------------------------------------------------------------------------------


@pytest.fixture
def searchable(worktree: Path) -> Path:
    (worktree / "src" / "pkg" / "util.py").write_text(
        "VALUE = 1\n\ndef helper():\n    return VALUE\n"
    )
    (worktree / "docs").mkdir()
    (worktree / "docs" / "guide.md").write_text("Use helper() to get the VALUE.\n")
    (worktree / "node_modules" / "lib").mkdir(parents=True)
    (worktree / "node_modules" / "lib" / "index.js").write_text("const VALUE = 2;\n")
    (worktree / ".git" / "HEAD").write_text("VALUE in git\n")
    (worktree / "data.bin").write_bytes(b"VALUE\x00\x01")
    return worktree


async def test_search_finds_matching_lines(searchable: Path) -> None:
    tool = SearchTool(searchable)
    content = await ok(tool, {"pattern": r"VALUE\b"})
    assert content.splitlines()[:4] == [
        "docs/guide.md:1: Use helper() to get the VALUE.",
        "src/pkg/util.py:1: VALUE = 1",
        "src/pkg/util.py:4:     return VALUE",
        "",
    ]
    assert "[3 matching lines for pattern 'VALUE\\\\b' in .]" in content
    assert "[files skipped: 1 binary]" in content
    assert "node_modules" not in content and ".git" not in content
    content = await ok(tool, {"pattern": "def HELPER", "ignore_case": True})
    assert content.startswith("src/pkg/util.py:3: def helper():")
    content = await ok(tool, {"pattern": "VALUE", "glob": "*.md"})
    assert content.splitlines()[0] == "docs/guide.md:1: Use helper() to get the VALUE."
    assert "src/" not in content
    content = await ok(tool, {"pattern": "VALUE", "path": "src/pkg/util.py"})
    assert content.splitlines()[:2] == [
        "src/pkg/util.py:1: VALUE = 1",
        "src/pkg/util.py:4:     return VALUE",
    ]
    # Searching inside a skipped folder on purpose works.
    content = await ok(tool, {"pattern": "VALUE", "path": "node_modules"})
    assert content.startswith("node_modules/lib/index.js:1: const VALUE = 2;")
    content = await ok(tool, {"pattern": "nothing like this"})
    assert content.startswith("No matches for pattern 'nothing like this' in . (")


async def test_search_by_glob_lists_files(searchable: Path) -> None:
    tool = SearchTool(searchable)
    content = await ok(tool, {"glob": "**/*.py"})
    assert content.splitlines()[:2] == ["src/app.py", "src/pkg/util.py"]
    content = await ok(tool, {"glob": "src/*.py"})
    assert content.splitlines()[0] == "src/app.py"
    assert "util.py" not in content
    content = await ok(tool, {"glob": "*.{md,py}", "path": "src"})
    assert content.splitlines()[:2] == ["src/app.py", "src/pkg/util.py"]
    content = await ok(tool, {"glob": "pkg/[tu]til.py", "path": "src"})
    assert content.splitlines()[0] == "src/pkg/util.py"
    content = await ok(tool, {"glob": "*.rs"})
    assert content == "No files for glob '*.rs' in .."


async def test_search_is_confined(searchable: Path, outside: Path) -> None:
    (outside / "secret.py").write_text("VALUE = 'TOP SECRET'\n")
    (searchable / "linked_dir").symlink_to(outside, target_is_directory=True)
    (searchable / "linked_file.py").symlink_to(outside / "secret.py")
    tool = SearchTool(searchable)
    for path in ("..", str(outside), "linked_dir", "linked_file.py"):
        assert "outside the worktree" in await error(tool, {"pattern": "VALUE", "path": path})
    content = await ok(tool, {"pattern": "SECRET|VALUE"})
    assert "TOP SECRET" not in content and "linked" not in content
    content = await ok(tool, {"glob": "**/*.py"})
    assert "secret.py" not in content and "linked" not in content


async def test_search_caps_results_and_skips_large_files(searchable: Path) -> None:
    (searchable / "many.txt").write_text("hit\n" * 50)
    (searchable / "big.txt").write_text("hit\n" * 1000)
    tool = SearchTool(searchable, max_results=5, max_file_bytes=1000)
    content = await ok(tool, {"pattern": "^hit$"})
    lines = content.splitlines()
    assert lines[:5] == [f"many.txt:{n}: hit" for n in range(1, 6)]
    assert "[showing the first 5 results; there are more" in content
    assert "[files skipped: 1 binary, 1 larger than 1,000 bytes]" in content


async def test_search_runs_none_of_the_worktree_code(worktree: Path) -> None:
    # The search runs in a child Python started in the worktree: modules there must not be
    # imported in place of the standard library's.
    for name in ("json.py", "re.py", "activities.py"):
        (worktree / name).write_text("raise SystemExit('worktree code ran')\n")
    content = await ok(SearchTool(worktree), {"pattern": "worktree code"})
    assert content.startswith("activities.py:1: raise SystemExit")


async def test_search_stops_a_runaway_regex(searchable: Path) -> None:
    (searchable / "evil.txt").write_text("a" * 40 + "!\n")
    tool = SearchTool(searchable, timeout_s=1)
    started = time.monotonic()
    message = await error(tool, {"pattern": "^(a+)+$", "path": "evil.txt"})
    assert message.startswith("the search timed out after 1 s")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        (None, "takes a JSON object as input, got null"),
        ({}, "give `pattern`"),
        ({"pattern": "("}, "invalid regular expression '('"),
        ({"pattern": 3}, "`pattern` must be a string, got a number"),
        ({"glob": ["*.py"]}, "`glob` must be a string, got an array"),
        ({"pattern": "x", "ignore_case": "yes"}, "`ignore_case` must be a boolean"),
        ({"pattern": "x", "path": "missing"}, "The path missing does not exist"),
    ],
)
async def test_malformed_search_input_gets_an_error_result(
    worktree: Path, tool_input: object, message: str
) -> None:
    assert message in await error(SearchTool(worktree), tool_input)


# --- permissions ----------------------------------------------------------------------------


def _tools_of(front_matter_tools: str) -> list[str]:
    text = f"---\nname: x\ndescription: y\ntools: {front_matter_tools}\n---\nBody.\n"
    specialist, _ = parse_specialist(text, source="x.md")
    return specialist.tools


def _names(definitions: list[dict[str, Any]]) -> list[str]:
    return [definition["name"] for definition in definitions]


def test_reviewer_reads_and_searches_only() -> None:
    reviewer, _ = load_specialist_file(ROOT / "specialists" / "code-reviewer.md")
    perms = permissions_for(reviewer.tools)
    assert (perms.view, perms.write, perms.bash, perms.search) == (True, False, False, True)
    assert perms.unknown == () and perms.unavailable == ()
    assert perms.describe() == "Read, Grep, Glob"
    definitions = tool_definitions(perms, max_characters=16_000)
    assert definitions[0] == {"type": EDITOR_TYPE, "name": EDITOR_NAME, "max_characters": 16_000}
    assert _names(definitions) == [EDITOR_NAME, "search"]
    assert definitions[1]["input_schema"]["type"] == "object"


def test_implementer_gets_every_tool() -> None:
    implementer, _ = load_specialist_file(ROOT / "specialists" / "implementer.md")
    perms = permissions_for(implementer.tools)
    assert (perms.view, perms.write, perms.bash, perms.search) == (True, True, True, True)
    definitions = tool_definitions(perms)
    assert definitions[:2] == [
        {"type": EDITOR_TYPE, "name": EDITOR_NAME},
        {"type": BASH_TYPE, "name": "bash"},
    ]
    assert _names(definitions) == [EDITOR_NAME, "bash", "search"]


def test_no_tools_key_means_everything() -> None:
    perms = permissions_for([])
    assert (perms.view, perms.write, perms.bash, perms.search) == (True, True, True, True)
    assert perms.describe() == "all tools"


def test_claude_code_tools_we_do_not_provide_are_told_apart_from_unknown_ones() -> None:
    perms = permissions_for(
        _tools_of(
            "Task, TodoWrite, Read, Glob, Grep, Bash, WebFetch, mcp__github__get_issue, Telepathy"
        )
    )
    assert (perms.view, perms.write, perms.bash, perms.search) == (True, False, True, True)
    assert perms.unavailable == ("Task", "TodoWrite", "WebFetch", "mcp__github__get_issue")
    assert perms.unknown == ("Telepathy",)
    assert _names(tool_definitions(perms)) == [EDITOR_NAME, "bash", "search"]


def test_scoped_entries_grant_the_tool_and_are_reported() -> None:
    perms = permissions_for(_tools_of("Read, Bash(git add:*, git commit:*), Edit(src/**)"))
    assert (perms.view, perms.write, perms.bash, perms.search) == (True, True, True, False)
    assert perms.unenforced_scopes == ("Bash(git add:*, git commit:*)", "Edit(src/**)")
    # Editing without bash: the editor, and search to look around.
    perms = permissions_for(["Read", "Write", "Edit"])
    assert _names(tool_definitions(perms)) == [EDITOR_NAME, "search"]


def test_single_tool_lists() -> None:
    assert _names(tool_definitions(permissions_for(["Bash"]))) == ["bash"]
    assert _names(tool_definitions(permissions_for(["Read"]))) == [EDITOR_NAME, "search"]
    assert _names(tool_definitions(permissions_for(["Grep"]))) == ["search"]
    assert _names(tool_definitions(permissions_for(["WebSearch"]))) == []
    assert permissions_for(["bash", "READ"]).bash  # names are matched without case
