"""Several workers on several machines: host queues, branch homes, worktree placement.

Every worker polls the shared task queue (workflows, and setup's `prepare_workspace`, which any
worker may take) and its own *host queue*, `<shared queue>@<host id>`. The worker that prepares
an execution's workspace returns its host queue in the `Workspace`; every workspace-bound
activity of that execution is then scheduled there (workflows/placement.py), so it runs where the
clone is.

The host id is the hostname plus a short hash of the worker's workspace root: stable across
restarts (a restarted worker finds its queue and its clones again), distinct for two workers
on one machine with separate roots, and shared by two workers that share a root (they can
serve each other's executions). `COORD_HOST_ID` / `--host-id` sets it explicitly.

The execution branch lives on beyond its host: after setup and after every merge it is pushed
to its *home*, the repository's remote when it is a URL the worker may push to (and
`publish_to_remote` is on, and the plan asks no approval: nothing reaches the user's remote
before one), else a bare repository `<shared_root>/<execution id>.git`. A worker that re-homes
an execution clones the repository again and takes the branch from there.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import BaseModel, Field

from coordinator.branches import CreateWorktreeRequest
from coordinator.environment import CommandEnvironment
from coordinator.plan import SetupCommand

# How long an execution waits for its host to pick up a step before moving to another worker.
DEFAULT_HOST_GRACE_S = 120.0
HOST_QUEUE_SEPARATOR = "@"


class HostSettings(BaseModel):
    """What a worker tells the executions it prepares a workspace for."""

    host_queue: str
    shared_root: Path
    grace_s: float = DEFAULT_HOST_GRACE_S
    publish_to_remote: bool = True


def default_host_id(workspace_root: Path, hostname: str) -> str:
    """`<hostname>-<8 hex digits of the workspace root>`: stable across restarts. The caller
    passes the machine's host name and the root as an absolute, resolved path."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", hostname).strip("-.")
    digest = hashlib.sha256(str(workspace_root).encode()).hexdigest()
    return f"{name or 'host'}-{digest[:8]}"


def host_queue(shared_queue: str, host_id: str) -> str:
    return f"{shared_queue}{HOST_QUEUE_SEPARATOR}{host_id}"


def shared_home(shared_root: Path, execution_id: str) -> Path:
    """The bare repository an execution's branch is pushed to when it has no remote."""
    return shared_root / f"{execution_id}.git"


class Recipe(BaseModel):
    """How the setup phase made the workspace's environment (the prepared-environment
    folder, the context copies, the setup commands that passed, the per-worktree setup), so
    that a re-homed workspace gets it again on its new host. Recorded by workflows/placement.py."""

    prepared: bool = False
    plan_dir: str = ""
    context: list[str] = Field(default_factory=list)
    make_env_dir: bool = False
    status_file: str | None = None
    setup: list[SetupCommand] = Field(default_factory=list)
    environment: CommandEnvironment | None = None
    worktree_setup: list[SetupCommand] = Field(default_factory=list)


class Placement(BaseModel):
    """Where a worktree was made (workflow bookkeeping, never in history), and while nothing
    has worked in it yet, how to make it again on another host."""

    host_queue: str | None
    branch: str
    pristine: CreateWorktreeRequest | None = None
