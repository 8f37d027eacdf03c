"""The jail a plan's commands run in: bubblewrap (`bwrap`), where the worker has it.

Setup commands, gates, command specialists and a Claude specialist's bash run inside a
sandbox in which

- the filesystem is read-only, and most of it is not there at all: the system folders
  (`SYSTEM_PATHS`), the worker's Python, the folders on the command's PATH (those outside
  the worker's home) and the context documents are mounted read-only; the command's working
  directory (the task's worktree, or the clone for setup and execution-level gates), the
  execution's environment folder and a private temp folder (`/tmp`, also HOME) are the only
  writable places;
- git metadata is read-only: the clone's `.git` folder (with the objects, refs, config and
  hooks that every worktree shares) and a worktree's `.git` file. `git status`, `diff` and
  `log` work; `git add` and `commit` do not (the coordinator stages and commits a task's
  work itself, outside the jail). A specialist that could write there could point the
  coordinator's own git commands at a configuration of its choosing;
- it has its own PID namespace (`--unshare-pid`): the worker and its /proc are out of sight,
  and when the command's shell exits everything it started goes with it;
- it has no capabilities (`--cap-drop ALL`: root inside cannot remount anything writable);
- it dies with its worker (`--die-with-parent`): a killed worker never leaves a specialist
  working beside the retry of its task.

- it has its own network namespace (`--unshare-net`), connected to the outside by
  slirp4netns (activities/jail_network.py) with `--disable-host-loopback`: agents call their
  APIs and setup commands install packages, but nothing listening on the host's loopback
  (the Temporal server on 127.0.0.1:7233, which has no authentication) can be reached. Where
  slirp4netns is missing, jailed commands share the host's network (cutting them off the
  network would break agents) and the worker says so once when it starts;
- it has its own IPC and UTS namespaces (`--unshare-ipc`, `--unshare-uts`).

Without bwrap (not installed, or unable to make a sandbox here, or `COORD_CONFINE=off` on
the worker), commands run unjailed with the same private HOME and temp folder, the same
environment and the same process-group rules (`activities.process_groups`); the worker says
so once when it starts. A plan with `confine: required` refuses to run there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from coordinator.environment import (
    CONFINE_VARIABLE,
    CommandEnvironment,
    WorkerConfine,
    parse_worker_confine,
)

# Mounted read-only at the same place; symbolic links among them (/bin -> usr/bin on a
# merged-/usr system) are recreated as links.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
# Inside the jail: the private temp folder, and HOME within it.
JAIL_TMP = "/tmp"
HOME_NAME = "home"
_PROBE_TIMEOUT_S = 20
# slirp4netns's DNS forwarder inside the jail's network (with `--configure`).
SLIRP_DNS = "10.0.2.3"
# In the private temp folder: /etc/resolv.conf for a jail with its own network, when the
# host's names a resolver on its loopback (systemd-resolved's 127.0.0.53), out of reach there.
RESOLV_NAME = ".coord-resolv.conf"


class JailUnavailableError(RuntimeError):
    """The plan requires the jail (`confine: required`) and this worker cannot provide it."""


@dataclass(frozen=True)
class Jail:
    """What this worker can do: `bwrap` is the program to jail commands with, or None, and
    `note` says which bwrap it is or why there is none. `slirp4netns` gives jailed commands
    a network of their own, or None (then `network_note` says why): they share the host's."""

    bwrap: str | None
    note: str
    slirp4netns: str | None = None
    network_note: str = ""

    @property
    def available(self) -> bool:
        return self.bwrap is not None

    @property
    def isolates_network(self) -> bool:
        return self.bwrap is not None and self.slirp4netns is not None

    def network_warning(self) -> str:
        """What a jailed command can reach on the host's network; empty when isolated."""
        if self.bwrap is None or self.slirp4netns is not None:
            return ""
        return (
            f"jailed commands share the host's network and can reach services on its "
            f"loopback, the Temporal server included, because {self.network_note}"
        )

    def describe(self) -> str:
        """One line for the worker's log."""
        if self.bwrap is not None and self.slirp4netns is not None:
            return (
                f"commands run in a bubblewrap jail ({self.note}) with a network of their "
                f"own ({self.network_note}): outbound connections work, the host's loopback "
                "services (Temporal) are out of reach"
            )
        if self.bwrap is not None:
            return f"commands run in a bubblewrap jail ({self.note}); {self.network_warning()}"
        return (
            f"commands run WITHOUT the filesystem jail: {self.note}; they still get their "
            "own process group, a private HOME and temp folder and a scrubbed environment, "
            "and plans with `confine: required` will not start on this worker"
        )


# --- which jail this worker has ---------------------------------------------------------------

_configured: WorkerConfine | None = None
_detected: dict[WorkerConfine, Jail] = {}


def configure(setting: WorkerConfine) -> Jail:
    """The worker's setting (temporal-dev.yaml `worker.confine`, COORD_CONFINE), for every
    command this process runs from now on; returns the jail it gives."""
    global _configured
    _configured = setting
    return worker_jail()


def worker_jail() -> Jail:
    """The jail of this worker: as configured, else as COORD_CONFINE says (default auto).
    Looked for once per setting."""
    setting = _configured or parse_worker_confine(os.environ.get(CONFINE_VARIABLE) or "auto")
    if setting not in _detected:
        _detected[setting] = _detect(setting)
    return _detected[setting]


def _detect(setting: WorkerConfine) -> Jail:
    if setting == "off":
        return Jail(None, f"turned off on this worker ({CONFINE_VARIABLE}=off)")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Jail(None, "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
    with private_tmp() as tmp:
        probe = Sandbox(bwrap=bwrap, tmp=tmp)
        argv = probe.argv(["/bin/sh", "-c", "exit 0"], cwd=Path("/"))
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return Jail(None, f"{bwrap} cannot be run: {err}")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return Jail(None, f"{bwrap} cannot make a sandbox on this machine: {reason}")
    version = subprocess.run(
        [bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.strip()
    slirp, network_note = _detect_network(bwrap)
    return Jail(bwrap, f"{version or 'bwrap'} at {bwrap}", slirp, network_note)


def _detect_network(bwrap: str) -> tuple[str | None, str]:
    """(slirp4netns, note): the program that connects a jail's own network namespace to the
    outside, or None and why not."""
    slirp = shutil.which("slirp4netns")
    if slirp is None:
        return None, "slirp4netns is missing (Debian/Ubuntu: apt-get install slirp4netns)"
    with private_tmp() as tmp:
        argv = Sandbox(bwrap=bwrap, tmp=tmp).argv(["/bin/sh", "-c", "exit 0"], cwd=Path("/"))
        argv.insert(1, "--unshare-net")
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False
            )
            version = subprocess.run(
                [slirp, "--version"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return None, f"slirp4netns or bwrap --unshare-net cannot be run: {err}"
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return None, f"bwrap cannot make a network namespace on this machine: {reason}"
    if version.returncode != 0:
        return None, f"{slirp} --version failed with exit code {version.returncode}"
    first = (version.stdout.strip().splitlines() or ["slirp4netns"])[0]
    return slirp, f"{first} at {slirp}"


# --- one command's sandbox --------------------------------------------------------------------


@dataclass(frozen=True)
class Sandbox:
    """Where one command may read and write. `bwrap` None: no filesystem jail (the private
    HOME and temp folder still apply). `tmp` is the private temp folder on the worker; None
    lets `activities.process.run_shell` make one for the command and remove it after."""

    bwrap: str | None
    writable: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()
    # Read-only although inside a writable folder: git metadata.
    protected: tuple[Path, ...] = ()
    tmp: Path | None = None
    # Gives the jail a network namespace of its own (activities/jail_network.py).
    slirp4netns: str | None = None

    def with_tmp(self, tmp: Path) -> Sandbox:
        return replace(self, tmp=tmp)

    @property
    def contains_processes(self) -> bool:
        """The command runs in a PID namespace of its own whose first process dies with
        bwrap (`--unshare-pid --die-with-parent`): once bwrap has exited, the kernel kills
        everything the command started, whatever process group or session it moved to."""
        return self.bwrap is not None and self.tmp is not None

    @property
    def isolates_network(self) -> bool:
        """The command gets its own network (then `argv` needs `net`)."""
        return self.contains_processes and self.slirp4netns is not None

    def env(self, env: Mapping[str, str], tmp: Path) -> dict[str, str]:
        """HOME and TMPDIR in the private temp folder, unless the plan set them."""
        inside = Path(JAIL_TMP) if self.bwrap is not None else tmp
        result = dict(env)
        result.setdefault("HOME", str(inside / HOME_NAME))
        result.setdefault("TMPDIR", str(inside))
        return result

    def argv(
        self, command: Sequence[str], *, cwd: Path, net: tuple[int, int] | None = None
    ) -> list[str]:
        """The command line that runs `command` in `cwd` inside the jail.

        `net` is (info fd, block fd), the jail's ends of the pipes of a `JailNetwork`: the
        jail gets a network namespace of its own, and the command waits for its network.
        """
        if self.bwrap is None or self.tmp is None:  # as `contains_processes` says: no jail
            return list(command)
        args = [self.bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc"]
        args += ["--unshare-uts", "--cap-drop", "ALL"]
        if net is not None:
            info_fd, block_fd = net
            args += ["--unshare-net", "--info-fd", str(info_fd), "--block-fd", str(block_fd)]
        # No --new-session: the jail stays in the process group the worker made for it, so
        # a timeout's SIGTERM reaches the command. It has no controlling terminal either way.
        args += _system_mounts()
        if net is not None:
            args += _jail_resolv_conf(self.tmp)
        args += ["--dev", "/dev", "--proc", "/proc", "--bind", str(self.tmp), JAIL_TMP]
        # What is visible anyway (system folders) or writable anyway is not mounted again:
        # read-only inside a writable folder, it would stop the writes there.
        readable = _outside(_outside(self.readable, SYSTEM_PATHS), self.writable)
        mounts = [(p, "--ro-bind") for p in dict.fromkeys(readable)]
        mounts += [(p, "--bind") for p in dict.fromkeys(self.writable)]
        # Parents before their children, so a folder mounted inside another stays visible.
        for path, how in sorted(mounts, key=lambda m: len(m[0].parts)):
            if path.exists():
                args += [how, str(path), str(path)]
        for path in self.protected:
            if path.exists():
                args += ["--ro-bind", str(path), str(path)]
        # The folders bwrap made to mount on are read-only too: nothing else is writable.
        args += ["--remount-ro", "/"]
        return [*args, "--chdir", str(cwd), "--", *command]


def _system_mounts() -> list[str]:
    args = []
    for name in SYSTEM_PATHS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    resolv = Path("/etc/resolv.conf").resolve()  # often a link into /run
    if resolv.is_file() and not _under(resolv, SYSTEM_PATHS):
        args += ["--ro-bind", str(resolv), str(resolv)]
    return args


def _jail_resolv_conf(tmp: Path, link: Path = Path("/etc/resolv.conf")) -> list[str]:
    """Mounts for DNS in a jail with its own network: a resolver on the host's loopback
    (systemd-resolved's 127.0.0.53) is out of reach there, so slirp4netns's forwarder, which
    asks the host's resolvers, replaces it."""
    try:
        lines = link.read_text().splitlines()
    except OSError:
        return []
    loopback = ("127.", "::1")
    changed = [
        f"nameserver {SLIRP_DNS}"
        if line.split()[:1] == ["nameserver"] and line.split()[1:2][0].startswith(loopback)
        else line
        for line in lines
        if line.split()[:1] != ["nameserver"] or len(line.split()) > 1
    ]
    if changed == lines:
        return []
    generated = tmp / RESOLV_NAME
    generated.write_text("\n".join(dict.fromkeys(changed)) + "\n")
    return ["--ro-bind", str(generated), str(link.resolve())]


def _under(path: Path, folders: Sequence[str | Path]) -> bool:
    """Whether `path` is one of `folders` or inside one (lexically, as Path.is_relative_to;
    on strings, since this runs for every mount of every jailed command)."""
    text = str(path)
    for folder in folders:
        name = str(folder)
        if text == name or text.startswith(name if name.endswith("/") else name + "/"):
            return True
    return False


def _outside(paths: Sequence[Path], folders: Sequence[str | Path]) -> list[Path]:
    return [p for p in paths if not _under(p, folders)]


def sandbox_for(
    cwd: Path,
    environment: CommandEnvironment | None,
    env: Mapping[str, str],
    *,
    readable: Sequence[str | Path] = (),
    jail: Jail | None = None,
) -> Sandbox:
    """The sandbox of a plan's command run in `cwd` with environment `env`.

    Raises JailUnavailableError when the plan requires the jail and this worker has none.
    """
    jail = jail or worker_jail()
    confine = environment.confine if environment is not None else "auto"
    if confine == "required" and not jail.available:
        raise JailUnavailableError(
            f"the plan says `confine: required`, but {jail.note}; install bubblewrap on this "
            "worker, or set `confine: auto` in the plan to run without the jail"
        )
    if confine == "off" or jail.bwrap is None:
        return Sandbox(bwrap=None)
    writable = [cwd]
    if environment is not None and environment.env_dir:
        writable.append(Path(environment.env_dir))
    git_readable, protected = git_metadata(cwd)
    seen = [*git_readable, *_python_prefixes(), *_path_folders(env.get("PATH", ""))]
    seen += [Path(p) for p in readable]
    return Sandbox(
        bwrap=jail.bwrap,
        writable=tuple(_absolute(p) for p in writable),
        readable=tuple(dict.fromkeys(_absolute(p) for p in seen)),
        protected=tuple(protected),
        slirp4netns=jail.slirp4netns,
    )


def git_metadata(cwd: Path) -> tuple[list[Path], list[Path]]:
    """(folders to mount read-only, paths in `cwd` to keep read-only) for git to work.

    In a clone, its `.git` folder stays read-only. In a linked worktree, `.git` is a file
    naming the worktree's folder inside the clone's `.git/worktrees/`; the clone's `.git`
    (shared objects, refs, config, and that folder) is mounted read-only, and so is the
    `.git` file, which would otherwise let the command send the coordinator's git elsewhere.
    """
    dot_git = cwd / ".git"
    if dot_git.is_dir():
        return [], [dot_git]
    if not dot_git.is_file():
        return [], []
    try:
        text = dot_git.read_text(errors="replace").strip()
    except OSError:
        return [], [dot_git]
    if not text.startswith("gitdir:"):
        return [], [dot_git]
    admin = Path(text.removeprefix("gitdir:").strip())
    admin = admin if admin.is_absolute() else cwd / admin
    common = admin
    with contextlib.suppress(OSError):
        named = Path((admin / "commondir").read_text().strip())
        common = named if named.is_absolute() else admin / named
    return [Path(os.path.normpath(common))], [dot_git]


def _python_prefixes() -> list[Path]:
    """The worker's Python (its virtual environment and the installation under it): a plan
    command may run `python` as the worker does."""
    return [Path(p).resolve() for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}]


def _path_folders(path: str) -> list[Path]:
    """The folders on the command's PATH, so its programs are there in the jail; not those
    in the worker's home (a shim there needs the rest of the home, credentials included)."""
    home = Path.home()
    folders = []
    for entry in path.split(os.pathsep):
        folder = Path(entry)
        if not folder.is_absolute() or not folder.is_dir() or _under(folder, [home]):
            continue
        # A virtual environment's bin/ needs the environment around it.
        folders.append(folder.parent if (folder.parent / "pyvenv.cfg").is_file() else folder)
    return folders


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def make_private_tmp() -> Path:
    """A fresh temp folder on the worker, with a `home` in it."""
    folder = Path(tempfile.mkdtemp(prefix="coord-tmp-"))
    (folder / HOME_NAME).mkdir()
    return folder


def remove_private_tmp(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def private_tmp() -> Iterator[Path]:
    """A fresh temp folder with a `home` in it, removed afterwards."""
    folder = make_private_tmp()
    try:
        yield folder
    finally:
        remove_private_tmp(folder)
