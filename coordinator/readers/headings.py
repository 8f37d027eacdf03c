"""Heading-style plans: each task is a heading, its body is the work.

    ### Task 2: Wire the limiter into login

    **Depends on:** Task 1 | **Files:** `src/auth/login.ts`

    - [ ] **Step 1: Write the failing test** ...

(superpowers' `docs/plans/*.md`, harness-engineering's plans, hand-written ones with
`## Task N:` or `### T05 — Title`). With `Depends on:` lines the author's graph is the plan
(`none` means none; `Tasks 1-11` a range); without any, tasks run in file order, as these
plans are executed. A task is done when its heading says so (`✅`, `[x]`, `(done)`, a
`Status: done` line) or when it has step boxes and all are ticked; its step boxes are what
ticking it back ticks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from coordinator.progress import TaskTick, TickItem
from coordinator.readers.build import ReadPlan, ReadTask, build_plan
from coordinator.readers.details import DETAIL_KEYS, EXTRA_KEYS, DetailReader
from coordinator.readers.files import find_paths
from coordinator.readers.markdown import (
    DONE_MARKS,
    CodeBlock,
    Heading,
    Item,
    front_matter_end,
    open_fence,
    scan,
    split_lines,
)
from coordinator.readers.model import Issues, ParsedPlan, Ref
from coordinator.readers.order import Seq
from coordinator.readers.refs import parse_refs
from coordinator.readers.settings import is_settings_block, normalize_id, read_settings_block

TASK_HEADING = re.compile(
    r"^(?:\[(?P<mark>[ xX])\][ \t]*)?(?:~~)?(?P<id>task[ \t]+\d+(?:\.\d+)*|T\d{1,4}[a-z]?)"
    r"(?:~~)?[ \t]*(?:[:.)\-\u2013\u2014|][ \t]*|$)(?P<title>.*)$",
    re.I,
)
_DONE_HEADING = re.compile(r"✅|✔|☑|\((?:done|complete|completed)\)|\bDONE\b|~~", re.I)
_STATUS = re.compile(r"^[>*_ \t-]*status[*_ \t]*:[*_ \t]*(?P<value>\S+)", re.I)
_SEGMENTS = re.compile(r"[ \t]+\|[ \t]+")
_FILE_VERB = re.compile(r"^(?:create|modify|edit|update|test|tests|delete|move|add)[ \t]*:", re.I)
_PHASE_LENGTH = 60
# Only these start a phase: a plan's other headings (and headings of Markdown quoted in a
# task that a code block failed to contain) group nothing.
_PHASE = re.compile(r"^(?:phase|stage|milestone|part|wave|batch|chunk)[ \t]+[A-Za-z0-9]+", re.I)


class HeadingsReader:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = split_lines(text)
        self.issues = Issues()
        self.details = DetailReader(self.issues, {**DETAIL_KEYS, **EXTRA_KEYS}, parse_refs)
        self.plan = ReadPlan(source, "headings", [], self.issues)

    def read(self) -> ReadPlan:
        blocks = scan(self.lines, self.issues, start=front_matter_end(self.lines))
        headings = [b for b in blocks if isinstance(b, Heading)]
        first_task = next((h.line for h in headings if TASK_HEADING.match(h.text)), None)
        for block in blocks:
            if (
                isinstance(block, CodeBlock)
                and (first_task is None or block.line < first_task)
                and is_settings_block(block.info, block.body)
            ):
                read_settings_block(
                    self.plan.settings, block.line, block.body, self.source, self.issues
                )
        title = next((h for h in headings if h.level == 1), None)
        if title is not None:
            self.plan.title = title.raw.replace("**", "").strip() or None
            self.plan.title_line = title.line
        tasks = [h for h in headings if TASK_HEADING.match(h.text) and h.level > 1]
        phase: tuple[str, int] | None = None
        order = Seq("phase order")
        current = Seq("file order (no `Depends on:` lines)")
        for k, heading in enumerate(headings):
            if heading in tasks:
                task = self._task(heading, self._end(heading, headings[k + 1 :]), phase)
                current.add(task.id)
            elif tasks and 1 < heading.level < tasks[0].level and _PHASE.match(heading.text):
                phase = (heading.text[:_PHASE_LENGTH] or f"line {heading.line}", heading.line)
                if current.children:
                    order.add(current)
                current = Seq("file order (no `Depends on:` lines)")
        if current.children:
            order.add(current)
        declared = [t for t in self.plan.tasks if t.refs is not None]
        if declared:
            self._undeclared_follow_the_one_above()
        else:
            self.plan.order = order
        self.plan.empty_hint = " (write each task as a heading: `### Task 1: Title`)"
        return self.plan

    def _end(self, heading: Heading, after: list[Heading]) -> int:
        """The index after the task's last line: the next heading at its level or above."""
        following = next((h for h in after if h.level <= heading.level), None)
        return following.line - 1 if following is not None else len(self.lines)

    def _task(self, heading: Heading, end: int, phase: tuple[str, int] | None) -> ReadTask:
        match = TASK_HEADING.match(heading.text)
        assert match is not None
        task = ReadTask(line=heading.line, id=normalize_id(match["id"]))
        task.title = _DONE_HEADING.sub("", match["title"]).strip(" :-") or match["id"]
        if phase is not None:
            task.group, task.group_line = phase
        body = self.lines[heading.line : end]
        steps = self._steps(body, heading.line + 1)
        body = self._segments(task, body, heading.line + 1)
        self.details.read_body(task, body, heading.line + 1)
        task.files = [(p, line) for value, line in task.files for p in _paths(value)]
        done = bool(match["mark"] and match["mark"] in DONE_MARKS) or bool(
            _DONE_HEADING.search(match["title"])
        )
        status = next((m["value"] for line in body if (m := _STATUS.match(line))), "")
        done = done or status.strip("*_").lower() in ("done", "complete", "completed", "✅")
        done = done or (bool(steps) and all(item.mark in DONE_MARKS for item in steps))
        task.status = "done" if done else "open"
        open_steps = [s for s in steps if s.mark not in DONE_MARKS]
        if open_steps:
            task.tick = TaskTick(items=[TickItem(line=s.line, text=s.raw) for s in open_steps])
        self.plan.tasks.append(task)
        return task

    def _steps(self, body: list[str], first: int) -> list[Item]:
        """The checkbox steps of a task's body (not those in code blocks)."""
        return [b for b in scan(body, Issues(), base=first) if isinstance(b, Item)]

    def _segments(self, task: ReadTask, body: list[str], first: int) -> list[str]:
        """`**Depends on:** Task 1 | **Files:** `x``: each part is a detail line. Read here,
        blanked out of the body."""
        out = list(body)
        fence = None
        for j, line in enumerate(body):
            if fence is not None:
                fence = None if fence.closes(line) else fence
                continue
            if (opened := open_fence(line, top_level=False)) is not None:
                fence = opened[0]
                continue
            parts = _SEGMENTS.split(line.strip())
            matches = [self.details.pattern.match(p) for p in parts]
            if len(parts) < 2 or not any(matches):
                continue
            for found in matches:
                if found is not None and found["value"]:
                    key, written = self.details.key_of(found["key"]), found["key"].strip()
                    self.details.apply(task, key, written, [(found["value"], first + j)], first + j)
            # What is not a detail (`**Owns:** ...`) stays in the prompt.
            rest = [p for p, m in zip(parts, matches, strict=True) if m is None]
            out[j] = " | ".join(rest)
        return out

    def _undeclared_follow_the_one_above(self) -> None:
        previous: ReadTask | None = None
        for task in self.plan.tasks:
            if task.refs is None and previous is not None:
                task.refs = [Ref(previous.id, task.line, "file order (no `Depends on:` line)")]
            previous = task


def _paths(value: str) -> list[str]:
    """`Create: `src/a.ts`` -> [src/a.ts]; a plain name is taken as it is."""
    value = _FILE_VERB.sub("", value.strip()).strip()
    found = find_paths(value)
    return found or ([value.strip("`")] if value and " " not in value.strip("`") else [])


def read_headings(
    text: str,
    source: str,
    *,
    defaults: Mapping[str, Any] | None = None,
    name_hint: str | None = None,
) -> ParsedPlan:
    plan = HeadingsReader(text, source).read()
    plan.name_hint = name_hint
    return build_plan(plan, defaults)


__all__ = ["TASK_HEADING", "read_headings"]
