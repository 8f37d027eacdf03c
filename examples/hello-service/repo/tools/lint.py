"""The repository's own linter (standard library only).

    python3 tools/lint.py [--fix] [PATH ...]     (default PATH: the whole repository)

Checks every *.py file under the given paths for:

- trailing whitespace                      (--fix strips it)
- tabs in indentation                      (--fix replaces each with 4 spaces)
- tabs elsewhere                           (reported only: in a string the tab may matter)
- a missing newline at the end of the file (--fix adds it)
- print( calls left in greeter/ modules; greeter/__main__.py, the command line, may print
                                           (reported only: removing code is not mechanical)

Prints one `file:line: message` per problem and exits 1, or prints nothing and exits 0.
With --fix, it first repairs what is mechanical, says what it fixed, and exits 0 only when
nothing is left.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PRINT_CALL = re.compile(r"(?<![\w.])print\(")
SKIP_DIRS = {"__pycache__", "build", "dist"}


def python_files(paths: list[str]) -> list[Path]:
    files: set[Path] = set()
    for name in paths:
        path = Path(name)
        if path.is_file():
            files.add(path)
        elif path.is_dir():
            for found in path.rglob("*.py"):
                parts = found.relative_to(path).parts[:-1]
                if not any(p.startswith(".") or p in SKIP_DIRS for p in parts):
                    files.add(found)
        else:
            sys.exit(f"lint: {name}: no such file or folder")
    return sorted(files)


def may_print(path: Path) -> bool:
    """May this file print? Only greeter's library modules may not (paths from the repo root)."""
    try:
        parts = path.resolve().relative_to(Path.cwd().resolve()).parts
    except ValueError:  # outside the repository
        return True
    return not (parts[:1] == ("greeter",) and parts[-1] != "__main__.py")


def fixed_text(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip(" \t"))
        lines.append((line[:indent].replace("\t", "    ") + line[indent:]).rstrip())
    fixed = "\n".join(lines)
    return fixed if not fixed or fixed.endswith("\n") else fixed + "\n"


def problems(path: Path, text: str) -> list[str]:
    found = []
    lines = text.split("\n")
    check_prints = not may_print(path)
    for number, line in enumerate(lines, start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if line != line.rstrip():
            found.append(f"{path}:{number}: trailing whitespace")
        if "\t" in indent:
            found.append(f"{path}:{number}: tab in indentation (use 4 spaces)")
        elif "\t" in line.rstrip():
            found.append(f"{path}:{number}: tab character (write \\t in strings)")
        if check_prints and PRINT_CALL.search(line) and not line.lstrip().startswith("#"):
            found.append(f"{path}:{number}: print( left in a library module (debugging?)")
    if text and not text.endswith("\n"):
        found.append(f"{path}:{len(lines)}: no newline at end of file")
    return found


def main(argv: list[str]) -> int:
    fix = "--fix" in argv
    paths = [a for a in argv if a != "--fix"] or ["."]
    report: list[str] = []
    fixes = 0
    for path in python_files(paths):
        text = path.read_text(encoding="utf-8")
        if fix and (new := fixed_text(text)) != text:
            before = len(problems(path, text))
            path.write_text(new, encoding="utf-8")
            text = new
            fixes += before - len(problems(path, text))
            print(f"fixed {path}")
        report += problems(path, text)
    for line in report:
        print(line)
    if fix:
        left = f", {len(report)} left to fix by hand" if report else ""
        print(f"lint --fix: fixed {fixes} problem(s){left}")
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
