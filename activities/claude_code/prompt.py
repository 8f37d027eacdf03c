"""What Claude Code is told: the agent file's body as its system prompt, the task as its
first message.

The system prompt is the definition's body and one line naming the task, so that the
prompt Claude Code sends identifies the conversation; the task message carries the rest
(title, prompt, owned files, the repository's layout, context documents, what failed last
time, a human's guidance) and the role's instructions. Both are built again identically when
a retried activity resumes the session.
"""

from __future__ import annotations

from pathlib import Path

from activities.claude.brief import brief_sections, task_lines
from coordinator.work import SpecialistRequest

_ROLE_INSTRUCTIONS = {
    "task": (
        "Work only inside the repository (your current directory). Make the change and check "
        "it (run the tests or the relevant gate commands when you have a shell). Do not "
        "commit: the coordinator commits your work. End with a one-paragraph summary of what "
        "you did. If you cannot do the task (missing information, a contradiction), say "
        "exactly what a human must decide."
    ),
    "fix": (
        "Make the smallest correct change that makes the failure below pass, without "
        "disabling tests or gates. Do not commit. End with what you changed."
    ),
    "review": (
        "You review; you do not change files. Read the changed files and the code around "
        "them. End your last message with your findings, one per line as "
        "'- path:line: what to change' (most important first), then a line "
        "'VERDICT: approve' or 'VERDICT: changes_requested'. Approve when nothing blocks the "
        "change."
    ),
}

RESUME_MESSAGE = (
    "The worker running this session restarted. Continue the task from where you stopped: "
    "what your earlier tool calls did is done (their results are above); check the state "
    "(files, git status) before repeating anything."
)


def system_prompt(request: SpecialistRequest, definition: str) -> str:
    """The agent file's body, then the task it works on (one line)."""
    task = f"You are working on task `{request.task_id}`: {request.task_title}"
    return f"{definition.strip()}\n\n{task}\n"


PROJECT_MEMORY = ("CLAUDE.md", ".claude/CLAUDE.md")


def project_memory(cwd: Path, *, limit: int) -> list[str]:
    """The repository's CLAUDE.md, as a section of the task message: Claude Code reads no
    settings source here (session.py), so it would not load the file itself."""
    lines: list[str] = []
    for name in PROJECT_MEMORY:
        path = cwd / name
        if path.is_file():
            said = path.read_text(encoding="utf-8", errors="replace")[:limit].strip()
            lines += ["", f"# The repository's {name}", "", said]
    return lines


def task_message(request: SpecialistRequest, *, context_chars: int) -> str:
    """The first user message of the session: the same brief a Claude specialist gets
    (activities/claude/brief.py), the task's title as its heading, and the repository's
    CLAUDE.md."""
    lines = task_lines(request, heading="# ")
    lines += brief_sections(request, context_chars=context_chars)
    lines += project_memory(Path(request.cwd), limit=context_chars)
    lines += ["", "# How you work here", "", _ROLE_INSTRUCTIONS[request.role]]
    return "\n".join(lines).strip() + "\n"
