"""Our own read-only search of the worktree for specialists granted Grep / Glob / LS
(reviewers). The regular expressions run in a child Python process killed at the timeout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from activities.claude.tools.base import (
    BINARY_SNIFF_BYTES,
    SEARCH_NAME,
    BadInput,
    PathOutsideWorkspace,
    ToolResult,
    error_result,
    input_object,
    json_type,
    optional_str,
    resolve_inside,
)
from activities.process_env import scrubbed_env

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
    "from activities.claude.tools.search import _search_main; _search_main()"
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
        except (BadInput, PathOutsideWorkspace) as err:
            return error_result(str(err))
        try:
            found = await self._run_search(request)
        except TimeoutError:
            return error_result(
                f"the search timed out after {self.timeout_s:g} s and was stopped: use a "
                "simpler pattern or a narrower path or glob"
            )
        except (_SearchFailed, OSError, ValueError) as err:
            return error_result(f"the search failed: {err}")
        return ToolResult(content=self._report(request, shown, found))

    def _request(self, tool_input: object) -> tuple[dict[str, Any], str]:
        data = input_object(tool_input, SEARCH_NAME)
        pattern = optional_str(data, "pattern")
        glob = optional_str(data, "glob")
        shown = optional_str(data, "path") or "."
        ignore_case = data.get("ignore_case", False)
        if not isinstance(ignore_case, bool):
            raise BadInput(
                f"parameter `ignore_case` must be a boolean, got {json_type(ignore_case)}"
            )
        if not pattern and not glob:
            raise BadInput(
                "give `pattern` (a regular expression to find in files) and/or `glob` (to "
                "list or filter files by path)"
            )
        if pattern:
            try:
                re.compile(pattern, re.IGNORECASE if ignore_case else 0)
            except re.error as err:
                raise BadInput(f"invalid regular expression {pattern!r}: {err}") from err
        if glob:
            _glob_regex(glob)
        target = resolve_inside(self.root, shown)
        if not target.exists():
            raise BadInput(f"The path {shown} does not exist. Please provide a valid path.")
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
        raise BadInput("parameter `glob` is empty")
    try:
        return re.compile(_translate_glob(pattern) + r"\Z", re.DOTALL)
    except re.error as err:
        raise BadInput(f"invalid glob {glob!r}: {err}") from err


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
            if b"\x00" in data[:BINARY_SNIFF_BYTES]:
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
