"""What a plan adds around its commands: variables, the prepared environment, context documents,
the status file. Rules and boundary models only; the activities apply them on the worker.

- `env` values travel in workflow history (they are in the plan), so names that look like
  credentials are refused there; secrets come from the worker's environment by name
  (`env_from`) and are read by the activity that runs the command, never by the workflow.
- The setup commands prepare one folder per execution, outside every worktree
  (`COORD_ENV_DIR`); its `bin` is first on PATH for setup, gates and specialists, and when
  it holds a Python virtual environment it is the VIRTUAL_ENV as well.
- Commands start from an environment of their own, not the worker's: the variables in
  `BASE_VARIABLES` (PATH, the locale, who the user is), then what the plan passes.
- `confine` says whether they run in the operating system's jail (activities/jail.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

# --- secrets ---------------------------------------------------------------------------------

_SECRET_NAMES = frozenset({"GITHUB_TOKEN", "GH_TOKEN", "TEMPORAL_API_KEY", "AWS_SECRET_ACCESS_KEY"})
_SECRET_PREFIXES = ("ANTHROPIC_", "TEMPORAL_TLS_")
_SECRET_SUFFIXES = ("_TOKEN", "_API_KEY", "_APIKEY", "_SECRET", "_SECRET_KEY", "_PASSWORD")


def is_secret_name(name: str) -> bool:
    """True for environment variables that hold credentials (compared in upper case)."""
    upper = name.upper()
    return (
        upper in _SECRET_NAMES
        or upper.startswith(_SECRET_PREFIXES)
        or upper.endswith(_SECRET_SUFFIXES)
    )


# --- variables -------------------------------------------------------------------------------

# What a command gets from the worker's environment without the plan asking: where programs
# are, the language and time zone, and who the user is. Everything else (proxies, tool
# settings, credentials) only by name, with env_from. HOME and TMPDIR are the command's own.
BASE_VARIABLES = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "USER", "LOGNAME"})
BASE_PREFIXES = ("LC_",)


def is_base_variable(name: str) -> bool:
    return name in BASE_VARIABLES or name.startswith(BASE_PREFIXES)


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The coordinator's own variables (COORD_TASK_ID, COORD_ENV_DIR, ...) and the ones it
# composes itself cannot be set by a plan.
RESERVED_PREFIX = "COORD_"
COMPOSED = frozenset({"PATH", "VIRTUAL_ENV"})
ENV_DIR_VARIABLE = "COORD_ENV_DIR"
# A URL with a password in it ("postgres://user:secret@host/db").
_CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def env_name_problem(name: str, *, passed_through: bool) -> str | None:
    """Why `name` cannot be set by a plan's `env` (or passed by `env_from`), or None."""
    if not ENV_NAME.match(name):
        return f"'{name}' is not an environment variable name (letters, digits, '_')"
    if name.upper().startswith(RESERVED_PREFIX):
        return f"'{name}': variables starting with {RESERVED_PREFIX} are the coordinator's own"
    if name.upper() in COMPOSED:
        return (
            f"'{name}' is composed by the coordinator: the setup commands install into "
            f"${ENV_DIR_VARIABLE}, whose bin/ comes first on PATH"
        )
    if not passed_through and is_secret_name(name):
        return (
            f"'{name}' looks like a secret, and the plan travels in workflow history: "
            f"set it in the worker's environment and list it under env_from: [{name}]"
        )
    return None


def env_value_warning(value: str) -> str | None:
    if _CREDENTIALS_IN_URL.search(value):
        return (
            "the value looks like a URL with a password, and the plan travels in workflow "
            "history: pass it from the worker's environment with env_from"
        )
    return None


def _unquoted_off(value: object) -> object:
    """YAML 1.1 reads an unquoted `off` as false."""
    return "off" if value is False else value


# The plan's `confine`: `auto` jails commands where the worker can (bubblewrap), `required`
# refuses to run them anywhere else, `off` runs them without the filesystem jail.
Confine = Annotated[Literal["auto", "required", "off"], BeforeValidator(_unquoted_off)]
# The worker's setting (temporal-dev.yaml `worker.confine`, COORD_CONFINE): `off` runs every
# command as if bwrap were missing.
WorkerConfine = Annotated[Literal["auto", "off"], BeforeValidator(_unquoted_off)]
CONFINE_VARIABLE = "COORD_CONFINE"


def parse_worker_confine(value: str, where: str = CONFINE_VARIABLE) -> WorkerConfine:
    """The worker's setting from text; ValueError naming `where` for anything else."""
    text = value.strip().lower()
    if text == "auto":
        return "auto"
    if text == "off":
        return "off"
    raise ValueError(f"{where}={value!r}: expected auto or off")


class CommandEnvironment(BaseModel):
    """What every command of an execution gets on top of the base variables.

    Names and paths only: `env_from` values are read on the worker when the command starts.
    """

    env: dict[str, str] = Field(default_factory=dict)
    env_from: list[str] = Field(default_factory=list)
    # The execution's prepared environment (`COORD_ENV_DIR`), when the plan has setup commands.
    env_dir: str | None = None
    confine: Confine = "auto"

    @property
    def empty(self) -> bool:
        return not (self.env or self.env_from or self.env_dir or self.confine != "auto")


# --- context documents -----------------------------------------------------------------------


def find_context(entry: str, plan_dir: Path, repository: Path | None) -> list[Path]:
    """Where a `context` entry may be, in the order tried: beside the plan, then in the
    repository (absolute paths are taken as they are)."""
    path = Path(entry).expanduser()
    if path.is_absolute():
        return [path]
    candidates = [plan_dir / path]
    if repository is not None:
        candidates.append(repository / path)
    return candidates


def context_problem(entry: str, plan_dir: Path, repository: Path | None) -> tuple[Path | None, str]:
    """(the file, "") when the entry names a readable, non-empty file; else (None, why)."""
    candidates = find_context(entry, plan_dir, repository)
    for candidate in candidates:
        if candidate.is_dir():
            return None, f"context document '{entry}' is a folder ({candidate}); list its files"
        if candidate.is_file():
            try:
                data = candidate.read_bytes()
            except OSError as err:
                return None, f"context document '{entry}' cannot be read: {err.strerror or err}"
            if not data.strip():
                return None, f"context document '{entry}' is empty ({candidate})"
            return candidate, ""
    if len(candidates) == 1:
        where = f"({candidates[0]})"
        if not Path(entry).expanduser().is_absolute():
            where = f"beside the plan ({candidates[0]})"
    else:
        where = f"beside the plan ({candidates[0]}) or in the repository ({candidates[1]})"
    return None, f"context document '{entry}' not found {where}"


def context_copy_names(files: Sequence[Path]) -> list[str]:
    """File names for the copies in the execution's artifacts: the original name, numbered
    when two documents share it."""
    names: list[str] = []
    for index, file in enumerate(files, 1):
        name = file.name
        names.append(name if name not in names else f"{index:02d}-{name}")
    return names


# --- status file -----------------------------------------------------------------------------

STATUS_DIR = ".coord/execution"


def status_file_path(setting: bool | str, execution_id: str) -> str | None:
    """Where the status file goes: relative to the execution's workspace, or absolute."""
    if setting is False:
        return None
    if setting is True:
        return f"{STATUS_DIR}/{execution_id}.json"
    return setting


def status_path_problem(value: str) -> str | None:
    path = PurePosixPath(value)
    if not path.is_absolute() and ".." in path.parts:
        return f"status_file '{value}' must stay inside the workspace (no '..'), or be absolute"
    if value.endswith("/"):
        return f"status_file '{value}' must name a file, not a folder"
    return None
