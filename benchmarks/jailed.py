"""The jailed baseline: the bare Temporal DAG (benchmarks/bare.py) whose activity runs the
task's commands, each in coord's own jail (`run_shell` with the sandbox a plan's command
gets: bubblewrap, and slirp4netns for its network where the worker has it), in a folder of its
own, and nothing else: no worktree, no git, no gate results, no scheduler. It is the floor
of any coordinator that jails a task's commands the way coord does; coord's figures are read
against it as well as against the bare DAG.

Unlike the rest of the harness this uses coord's internals (the jail), on purpose: the
baseline should follow the jail as it changes.
"""

from __future__ import annotations

import os
from pathlib import Path

from temporalio import activity

from activities.jail import sandbox_for, worker_jail
from activities.process import run_shell
from benchmarks.bare import JAILED_ACTIVITY, JailedStep


@activity.defn(name=JAILED_ACTIVITY)
async def jailed(step: JailedStep) -> None:
    """Run the step's commands one after the other, each in the jail; fail on a failure."""
    folder = Path(step.scratch) / step.task
    folder.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    sandbox = sandbox_for(folder, None, env)
    for n, command in enumerate(step.commands):
        outcome = await run_shell(
            command,
            cwd=folder,
            env=env,
            stdin=None,
            timeout=30,
            log_path=folder / f"command-{n}.log",
            sandbox=sandbox,
        )
        if outcome.exit_code != 0:
            raise RuntimeError(f"{command!r} in the jail: {outcome.output_tail.strip()}")


def jail_described() -> str:
    """The jail this machine gives commands, coord's and the jailed baseline's alike."""
    return worker_jail().describe()
