"""Running git from activities: bounded, with a fixed identity, errors that say what failed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

# Commits made by the coordinator must work on hosts without a git identity configured.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "coord",
    "GIT_AUTHOR_EMAIL": "coord@localhost",
    "GIT_COMMITTER_NAME": "coord",
    "GIT_COMMITTER_EMAIL": "coord@localhost",
    "GIT_TERMINAL_PROMPT": "0",
}


class GitError(RuntimeError):
    def __init__(self, args: list[str], cwd: Path | None, returncode: int, output: str) -> None:
        self.returncode = returncode
        self.output = output
        where = f" in {cwd}" if cwd else ""
        super().__init__(
            f"git {' '.join(args)}{where} failed ({returncode}): {output.strip()[-2000:]}"
        )


async def git(*args: str, cwd: Path | None = None, timeout: float = 300) -> str:
    """Run git and return its stdout; raise GitError with stderr on failure."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **GIT_IDENTITY},
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise GitError(
            list(args), cwd, proc.returncode or -1, (err or out).decode(errors="replace")
        )
    return out.decode(errors="replace").strip()


async def is_git_repo(path: Path) -> bool:
    try:
        top = await git("rev-parse", "--show-toplevel", cwd=path)
    except (GitError, FileNotFoundError, NotADirectoryError):
        return False
    return Path(top).resolve() == path.resolve()
