"""The environment of the processes the worker starts: a plan's command sees the worker's base
variables, the execution's prepared environment and what the plan passes on purpose, never the
worker's credentials; the worker itself keeps its credentials out of /proc.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from coordinator.environment import ENV_DIR_VARIABLE, CommandEnvironment, is_base_variable
from coordinator.environment import is_secret_name as is_secret_name  # the rules live there

# --- the environment a command sees ---------------------------------------------------------


def scrubbed_env(
    extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The worker's environment (or `base`) without credentials, then `extra` on top.

    Commands come from plans and agents, so they must not see the worker's API keys and
    tokens. `extra` is applied after scrubbing: what a caller passes on purpose is kept.
    """
    source = os.environ if base is None else base
    env = {key: value for key, value in source.items() if not is_secret_name(key)}
    env.update(extra or {})
    return env


class MissingVariableError(RuntimeError):
    """A variable the plan passes through (`env_from`) is not set on this worker."""


def command_env(
    environment: CommandEnvironment | None,
    extra: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a plan's command: only the worker's base variables (PATH, the
    locale, the user: `coordinator.environment.BASE_VARIABLES`), then the execution's
    prepared environment first on PATH, the plan's `env`, the variables it passes through by
    name (`env_from`, read here on the worker), and `extra` (the task's COORD_*). HOME and
    TMPDIR come from the command's sandbox.

    Raises MissingVariableError naming the `env_from` variables this worker lacks.
    """
    source = os.environ if base is None else base
    env = {key: value for key, value in scrubbed_env(base=source).items() if is_base_variable(key)}
    if environment is None:
        env.update(extra or {})
        return env
    if environment.env_dir:
        env_dir = Path(environment.env_dir)
        env[ENV_DIR_VARIABLE] = str(env_dir)
        env["PATH"] = os.pathsep.join([str(env_dir / "bin"), env.get("PATH") or os.defpath])
        if (env_dir / "pyvenv.cfg").is_file():  # a virtual environment: as `activate` does
            env["VIRTUAL_ENV"] = str(env_dir)
            env.pop("PYTHONHOME", None)
    env.update(environment.env)
    missing = [name for name in environment.env_from if name not in source]
    if missing:
        raise MissingVariableError(
            f"env_from: {', '.join(missing)} not set in the environment of the worker on "
            f"{socket.gethostname()}"
        )
    env.update({name: source[name] for name in environment.env_from})
    env.update(extra or {})
    return env


# --- the worker's own environment ------------------------------------------------------------

SECRETS_FD = "COORD_SECRETS_FD"


def hide_secrets_from_children(argv: Sequence[str]) -> None:
    """Restart this process (same pid) with the credentials out of its initial environment.

    Children get a scrubbed environment, but on Linux a command run by the same user can
    still read its parent's initial environment in /proc/<ppid>/environ: a specialist's
    `cat /proc/$PPID/environ` would print ANTHROPIC_API_KEY. So the worker re-executes
    itself (`python <argv>`) with those variables removed, hands them over in a memory file,
    and puts them back into os.environ after the exec: in memory only, where /proc does not
    show them. A no-op when there is nothing to hide, off Linux, or after the exec.
    """
    if SECRETS_FD in os.environ:  # the re-executed process: take the credentials back
        fd = int(os.environ.pop(SECRETS_FD))
        with os.fdopen(fd, "rb") as handed:
            os.environ.update(json.loads(handed.read() or b"{}"))
        return
    secrets = {name: value for name, value in os.environ.items() if is_secret_name(name)}
    if not secrets or not sys.platform.startswith("linux") or not hasattr(os, "memfd_create"):
        return
    fd = os.memfd_create("coord-secrets", 0)
    os.write(fd, json.dumps(secrets).encode())
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    env = {name: value for name, value in os.environ.items() if name not in secrets}
    env[SECRETS_FD] = str(fd)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], env)
