"""The execution's environment on the worker: the prepared-environment folder, the context
documents, the setup commands (in the clone, and in each new worktree with
`setup_per_worktree`), and the status file.

Setup commands must leave the branch as it is: the execution branch changes only through
tasks. Tracked files a setup command changes are put back (and the log says which), and what
it creates that git would see (`.venv/`, `node_modules/`, generated files) is added to the
repository's `info/exclude`, so no task ever commits it and `git clean` in a worktree keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.command_runner import CommandSpec, command_context, require_folder, run_command
from activities.git import GitError, git, repo_lock
from activities.heartbeat import heartbeating
from activities.process import retry_suffix, safe_name
from coordinator.branches import artifacts_dir
from coordinator.environment import CommandEnvironment, context_copy_names, context_problem
from coordinator.execution import (
    PreparedEnvironment,
    PrepareEnvironmentInput,
    SetupCommandRequest,
    SetupCommandResult,
    StatusFileRequest,
    WorktreeSetupRequest,
    WorktreeSetupResult,
)
from coordinator.plan import SetupCommand
from coordinator.work import OUTPUT_TAIL_BYTES

SETUP_MARKER = "coord-setup-done"  # in a worktree's private git folder: set up already
EXCLUDE_HEADER = "# added by coord: made by the plan's setup commands"
STATUS_EXCLUDE_HEADER = "# added by coord: the execution's status file"


def env_dir(workspace_root: Path, execution_id: str) -> Path:
    """The prepared environment: beside the clone and the worktrees, inside none of them."""
    return workspace_root / execution_id / "env"


class SetupCommandFailed(Exception):
    def __init__(self, message: str, output_tail: str, log_path: Path) -> None:
        super().__init__(message)
        self.output_tail = output_tail
        self.log_path = log_path


class EnvironmentActivities:
    def __init__(self, workspace_root: Path, artifacts_root: Path) -> None:
        self.workspace_root = workspace_root
        self.artifacts_root = artifacts_root

    # --- the setup phase -------------------------------------------------------------------

    @activity.defn(name="prepare_environment")
    async def prepare_environment(self, request: PrepareEnvironmentInput) -> PreparedEnvironment:
        """Make the prepared-environment folder, copy the context documents into the
        execution's artifacts, keep the status file out of git. Safe to repeat."""
        clone = Path(request.workspace)
        async with heartbeating(f"environment of {request.execution_id}"):
            folder = None
            if request.make_env_dir:
                folder = env_dir(self.workspace_root.resolve(), request.execution_id)
                folder.mkdir(parents=True, exist_ok=True)
            copies = await asyncio.to_thread(self._copy_context, request)
            if request.status_file and not Path(request.status_file).is_absolute():
                await _exclude(clone, STATUS_EXCLUDE_HEADER, _status_patterns(request.status_file))
        return PreparedEnvironment(
            env_dir=str(folder) if folder else None, context_paths=[str(c) for c in copies]
        )

    def _copy_context(self, request: PrepareEnvironmentInput) -> list[Path]:
        """A snapshot of every document, taken once: every specialist of the execution reads
        the same text, wherever it was (beside the plan on this host, or in the clone, whose
        checkout moves as tasks merge)."""
        sources: list[Path] = []
        for entry in request.context:
            found, problem = context_problem(entry, Path(request.plan_dir), Path(request.workspace))
            if found is None:  # the plan check ran just before: the file went away since
                raise ApplicationError(problem, type="ContextMissing", non_retryable=True)
            sources.append(found)
        folder = artifacts_dir(self.workspace_root.resolve(), request.execution_id) / "context"
        folder.mkdir(parents=True, exist_ok=True)
        copies = []
        for source, name in zip(sources, context_copy_names(sources), strict=True):
            copy = folder / name
            partial = folder / f".{name}.{os.getpid()}.tmp"
            shutil.copyfile(source, partial)
            partial.replace(copy)
            copies.append(copy)
        return copies

    @activity.defn(name="run_setup_command")
    async def run_setup_command(self, request: SetupCommandRequest) -> SetupCommandResult:
        """One setup command in the clone, on the execution branch. A failure is an error, so
        Temporal retries it (three attempts), and then the setup phase asks a human."""
        command = request.command
        log_path = (
            self.artifacts_root
            / safe_name(request.execution_id)
            / "setup"
            / f"{safe_name(command.name)}-{request.round}{retry_suffix()}.log"
        )
        try:
            # Heartbeats cover the git bookkeeping around the command too (a big checkout).
            async with heartbeating(f"setup command {command.name!r}"):
                return await _run_setup(
                    command, Path(request.cwd), request.environment, log_path, scope="workspace"
                )
        except SetupCommandFailed as err:
            raise ApplicationError(
                str(err),
                {"output_tail": err.output_tail, "log_path": str(err.log_path)},
                type="SetupCommandFailed",
            ) from err

    # --- every new worktree ----------------------------------------------------------------

    @activity.defn(name="setup_worktree")
    async def setup_worktree(self, request: WorktreeSetupRequest) -> WorktreeSetupResult:
        """Every setup command again in a task's new worktree (`setup_per_worktree`); nothing
        when this worktree was set up before, so later attempts keep their environment."""
        wt = Path(request.worktree)
        require_folder(f"setup for {request.scope}", wt, "worktree")
        marker = Path(await _git_out(wt, "rev-parse", "--absolute-git-dir")) / SETUP_MARKER
        if marker.exists():
            return WorktreeSetupResult(ran=False)
        folder = self.artifacts_root / safe_name(request.execution_id) / "setup"
        async with heartbeating(f"setup in the worktree of {request.scope}"):
            for command in request.commands:
                log_path = folder / (
                    f"{safe_name(command.name)}-{safe_name(request.scope)}{retry_suffix()}.log"
                )
                try:
                    await _run_setup(
                        command, wt, request.environment, log_path, scope=request.scope
                    )
                except SetupCommandFailed as err:
                    raise ApplicationError(
                        f"{err} (in the worktree of {request.scope})",
                        {"output_tail": err.output_tail, "log_path": str(err.log_path)},
                        type="SetupCommandFailed",
                    ) from err
        marker.write_text("done\n")
        return WorktreeSetupResult(ran=True)


async def _run_setup(
    command: SetupCommand,
    cwd: Path,
    environment: CommandEnvironment | None,
    log_path: Path,
    *,
    scope: str,
) -> SetupCommandResult:
    what = f"setup command {command.name!r}"
    spec = CommandSpec(
        what=what,
        command=command.run,
        cwd=cwd,
        place="folder",
        environment=environment,
        extra_env={"COORD_WORKSPACE": str(cwd)},
        timeout=command.timeout,
        log_path=log_path,
        # The runs of this command in this place, one at a time.
        slot=log_path.parent / ".processes" / f"{safe_name(command.name)}-{safe_name(scope)}",
        not_started="SetupNotStarted",
    )
    context = command_context(spec)
    was_clean = not await _tracked_changes(cwd)
    activity.logger.info("%s (%s): %s", what, scope, command.run)
    outcome = await run_command(spec, context)
    restored = await _put_back_tracked_files(cwd, log_path) if was_clean else []
    if outcome.timed_out or outcome.exit_code != 0:
        why = (
            f"timed out after {command.timeout} s"
            if outcome.timed_out
            else f"exited with code {outcome.exit_code}"
        )
        last = next((ln for ln in reversed(outcome.output_tail.splitlines()) if ln.strip()), "")
        raise SetupCommandFailed(
            f"{what} {why}" + (f": {last.strip()[:300]}" if last else "") + f" (log: {log_path})",
            outcome.output_tail[-OUTPUT_TAIL_BYTES:],
            log_path,
        )
    made = await _untracked(cwd)
    if made:
        await _exclude(cwd, EXCLUDE_HEADER, [_anchored(p) for p in made])
    return SetupCommandResult(
        name=command.name, duration_s=outcome.duration_s, log_path=str(log_path), restored=restored
    )


# --- git bookkeeping -------------------------------------------------------------------------


async def _status(cwd: Path, *args: str) -> list[tuple[str, str]]:
    """(kind, path) from `git status --porcelain=v2 -z`: kind "?" is untracked, anything
    else a tracked change. (v2, because v1 lines may start with a space.)"""
    out = await _git_out(cwd, "status", "--porcelain=v2", "-z", *args)
    fields_before_path = {"1": 8, "2": 9, "u": 10, "?": 1}
    entries: list[tuple[str, str]] = []
    items = iter(out.split("\0"))
    for item in items:
        kind = item[:1]
        if kind not in fields_before_path or " " not in item:
            continue
        entries.append((kind, item.split(" ", fields_before_path[kind])[-1]))
        if kind == "2":
            next(items, None)  # the original path of a rename or copy
    return entries


async def _git_out(cwd: Path, *args: str) -> str:
    """`git`, with a failure that says what failed, for Temporal to retry."""
    try:
        return await git("-c", "core.quotePath=false", *args, cwd=cwd, timeout=600)
    except GitError as err:
        raise ApplicationError(str(err), type="GitError") from err


async def _tracked_changes(cwd: Path) -> list[str]:
    return [path for kind, path in await _status(cwd, "--untracked-files=no") if kind != "?"]


async def _untracked(cwd: Path) -> list[str]:
    return [path for kind, path in await _status(cwd, "--untracked-files=normal") if kind == "?"]


async def _put_back_tracked_files(cwd: Path, log_path: Path) -> list[str]:
    changed = await _tracked_changes(cwd)
    if not changed:
        return []
    await _git_out(cwd, "-c", "core.hooksPath=/dev/null", "reset", "--quiet", "--hard", "HEAD")
    more = f" and {len(changed) - 20} more" if len(changed) > 20 else ""
    shown = ", ".join(changed[:20]) + more
    with contextlib.suppress(OSError), log_path.open("a") as log:
        log.write(
            f"\n[coord] the setup command changed tracked files, put back so the branch "
            f"changes only through tasks: {shown}\n"
        )
    return changed


def _status_patterns(relative: str) -> list[str]:
    """The status file, and the temporary file it is written to before the rename."""
    path = PurePosixPath(relative)
    return [_anchored(relative), _anchored(str(path.parent / f".{path.name}.")) + "*.tmp"]


def _anchored(path: str) -> str:
    """An exclude pattern that matches exactly this path from the repository's top."""
    escaped = "".join("\\" + c if c in "*?[\\" else c for c in path.lstrip("/"))
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return "/" + escaped


async def _exclude(repo: Path, header: str, patterns: list[str]) -> None:
    """Add patterns to the repository's info/exclude (shared by its worktrees), once each."""
    common = await _git_out(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
    exclude = Path(common) / "info" / "exclude"
    async with repo_lock(repo):
        text = exclude.read_text() if exclude.exists() else ""
        known = set(text.splitlines())
        missing = [p for p in dict.fromkeys(patterns) if p not in known]
        if not missing:
            return
        exclude.parent.mkdir(parents=True, exist_ok=True)
        prefix = "" if not text or text.endswith("\n") else "\n"
        with exclude.open("a") as out:
            out.write(prefix + "\n".join([header, *missing]) + "\n")


# --- the status file -------------------------------------------------------------------------


@activity.defn(name="write_status_file")
async def write_status_file(request: StatusFileRequest) -> None:
    """The execution's progress as `coord status --json` prints it, replaced atomically: a
    reader sees the previous file or the new one, never a part of either."""
    path = Path(request.path)
    text = request.progress.model_dump_json(indent=2) + "\n"
    root = Path(request.root) if request.root else None
    if root is not None and path.is_relative_to(root):
        await asyncio.to_thread(_write_below, root, path.relative_to(root), text)
    else:  # an absolute path the plan's author chose, outside the clone
        await asyncio.to_thread(_write_atomically, path, text)


def _write_below(root: Path, relative: Path, text: str) -> None:
    """Write inside the clone without following a link anywhere under it: code a specialist
    wrote can plant `.coord/execution -> /somewhere` in the clone, and the worker must not
    write there. Every folder is opened relative to its parent with O_NOFOLLOW."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fd = os.open(root, flags)
    try:
        for part in relative.parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, dir_fd=fd)
            try:
                inner = os.open(part, flags, dir_fd=fd)
            except OSError as err:  # ELOOP / ENOTDIR: a link or a file where a folder goes
                raise ApplicationError(
                    f"status file {root / relative}: {part} is not a plain folder (a link "
                    "planted in the clone is never followed); the status file is not written",
                    type="StatusFileRefused",
                    non_retryable=True,
                ) from err
            os.close(fd)
            fd = inner
        name = relative.name
        partial = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        out = os.open(
            partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=fd
        )
        try:
            with os.fdopen(out, "w") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(partial, name, src_dir_fd=fd, dst_dir_fd=fd)  # replaces a link itself
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial, dir_fd=fd)
            raise
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
