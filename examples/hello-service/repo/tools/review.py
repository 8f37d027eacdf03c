"""A tiny code reviewer (standard library only): debugging leftovers in the lines a change adds.

    python3 tools/review.py [PATCH ...]     (`-` reads the patch from stdin)

Without arguments it reads the patch files listed in COORD_CONTEXT (paths joined with the
platform's path separator), which is how coord hands the reviewer the diff from the base
branch. Every added line is checked for TODO, FIXME, breakpoint( and pdb.

Exit 0 approves. Exit 1 requests changes, one `file:line: message` per finding (the line in
the new version of the file). Exit 2: no patch to review.
"""

from __future__ import annotations

import os
import re
import sys

CHECKS = [
    (re.compile(r"\bTODO\b"), "TODO left in the change: finish it or track it in an issue"),
    (re.compile(r"\bFIXME\b"), "FIXME left in the change: fix it before merging"),
    (re.compile(r"\bbreakpoint\("), "breakpoint() left in the change: remove it"),
    (re.compile(r"\bpdb\b"), "pdb left in the change: remove the debugger"),
]
HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def added_lines(patch: str) -> list[tuple[str, int, str]]:
    """(file, line number in the new file, text) for every line the patch adds."""
    added = []
    path, line, old_left, new_left = "", 0, 0, 0
    for raw in patch.splitlines():
        if old_left > 0 or new_left > 0:  # inside a hunk: its counts say where it ends
            tag, text = raw[:1], raw[1:]
            if tag == "+":
                added.append((path, line, text))
                line, new_left = line + 1, new_left - 1
            elif tag == "-":
                old_left -= 1
            elif tag == " " or raw == "":
                line, old_left, new_left = line + 1, old_left - 1, new_left - 1
            continue  # "\ No newline at end of file"
        if raw.startswith("+++ "):
            name = raw[4:].split("\t")[0]
            path = name[2:] if name.startswith("b/") else name
        elif match := HUNK.match(raw):
            old_count, start, new_count = match.groups()
            old_left = 1 if old_count is None else int(old_count)
            new_left = 1 if new_count is None else int(new_count)
            line = int(start)
    return added


def main(argv: list[str]) -> int:
    paths = argv or [p for p in os.environ.get("COORD_CONTEXT", "").split(os.pathsep) if p]
    patches = []
    for path in paths:
        if path == "-":
            patches.append(sys.stdin.read())
        elif os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as patch:
                patches.append(patch.read())
    if not patches:
        print("review: no patch to review (give patch files, or set COORD_CONTEXT)")
        return 2
    lines = [added for patch in patches for added in added_lines(patch)]
    findings = [
        f"{path}:{number}: {message}"
        for path, number, text in lines
        for pattern, message in CHECKS
        if pattern.search(text)
    ]
    for finding in findings:
        print(finding)
    files = len({path for path, _, _ in lines})
    if findings:
        print(f"review: changes requested, {len(findings)} finding(s)")
        return 1
    print(f"review: approved ({len(lines)} added lines in {files} files, no debugging leftovers)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
