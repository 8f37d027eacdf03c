"""A jail that bwrap fails to set up is launched again; the command inside runs once.

Under load bwrap sometimes fails while configuring the jail's loopback (`bwrap: loopback:
Failed RTM_NEWADDR: No child processes`) before the command starts. A fake bwrap in front of
the real one fails the first launches that way, on purpose, so the test does not depend on luck.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from activities.jail import Sandbox
from activities.process import JAIL_LAUNCHES, run_shell
from activities.process_env import scrubbed_env

REAL_BWRAP = shutil.which("bwrap")
pytestmark = pytest.mark.skipif(REAL_BWRAP is None, reason="bwrap (bubblewrap) is not installed")
LOOPBACK_ERROR = "bwrap: loopback: Failed RTM_NEWADDR: No child processes"


def flaky_bwrap(folder: Path, failures: int) -> tuple[Path, Path]:
    """A bwrap that fails its first `failures` launches as the real one does under load."""
    launches = folder / "launches"
    script = folder / "bwrap"
    script.write_text(
        "#!/bin/sh\n"
        f"echo x >> {launches}\n"
        f'if [ "$(wc -l < {launches})" -le {failures} ]; then\n'
        f'  echo "{LOOPBACK_ERROR}" >&2; exit 1\n'
        "fi\n"
        f'exec {REAL_BWRAP} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, launches


async def run_in(tmp_path: Path, failures: int, command: str) -> tuple[int | None, str, int]:
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    bwrap, launches = flaky_bwrap(tmp_path, failures)
    outcome = await run_shell(
        command,
        cwd=worktree,
        env=scrubbed_env(),
        stdin=None,
        timeout=120,
        log_path=tmp_path / "log.txt",
        heartbeat=False,
        sandbox=Sandbox(bwrap=str(bwrap), writable=(worktree,)),
    )
    count = len(launches.read_text().splitlines())
    ran = len((worktree / "ran").read_text().splitlines()) if (worktree / "ran").exists() else 0
    assert count >= ran
    return outcome.exit_code, outcome.output_tail.strip(), count * 1000 + ran


async def test_a_jail_that_failed_to_start_is_launched_again_and_the_command_runs_once(
    tmp_path: Path,
) -> None:
    code, output, counts = await run_in(tmp_path, 2, "echo ran >> ran; echo done")
    assert (code, output) == (0, "done")
    assert divmod(counts, 1000) == (3, 1)  # three launches, the command ran once


async def test_a_jail_that_never_starts_reports_bwraps_error_after_the_last_launch(
    tmp_path: Path,
) -> None:
    code, output, counts = await run_in(tmp_path, 99, "echo ran >> ran")
    assert (code, output) == (1, LOOPBACK_ERROR)
    assert divmod(counts, 1000) == (JAIL_LAUNCHES, 0)


async def test_a_failing_command_is_not_launched_again(tmp_path: Path) -> None:
    code, output, counts = await run_in(tmp_path, 0, "echo ran >> ran; echo 'bwrap: no'; exit 1")
    assert (code, output) == (1, "bwrap: no")
    assert divmod(counts, 1000) == (1, 1)
