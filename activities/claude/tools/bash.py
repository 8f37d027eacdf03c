"""The Anthropic-defined bash tool (`bash_20250124`): one fresh shell per command, in the
worktree and the jail."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from activities.claude.tools.base import (
    BASH_NAME,
    BadInput,
    ToolResult,
    as_str,
    error_result,
    input_object,
)
from activities.jail import Sandbox
from activities.process import SHELL, CommandNotStartedError, run_shell
from activities.process_env import is_secret_name, scrubbed_env

_RUN_SHELL_NOTE = re.compile(r"\n\[coord\] [^\n]*\n")  # run_shell's notes for the log reader
NEWLINE = "\n"


class BashTool:
    """The Anthropic-defined bash tool, name `bash`, in a worktree.

    Stateless: each command runs in a fresh shell (bash when installed, else sh) starting in
    the worktree, so `cd` and variables do not carry over to the next command; `restart`
    therefore has nothing to reset. The environment is the caller's, scrubbed again of
    credentials (`is_secret_name` and `secret_names`); each command gets its own process
    group, killed at `timeout_s` together with anything it started, and runs in `sandbox`
    (the jail of activities/jail.py) with its group recorded in `slot`. The model sees stdout
    and stderr combined, cut to head and tail around `output_limit` characters, with the exit
    code when it is not 0; the full output of each command is in its own log file in
    `log_dir`. Values of the worker's secrets that still show up in an output are replaced by
    "[redacted]" before the model sees it.
    """

    name = BASH_NAME

    def __init__(
        self,
        root: Path,
        *,
        env: Mapping[str, str],
        timeout_s: float = 120,
        output_limit: int = 30_000,
        log_dir: Path,
        secret_names: Sequence[str] = (),
        sandbox: Sandbox | None = None,
        slot: Path | None = None,
    ) -> None:
        self.root = root.resolve()
        self.sandbox = sandbox
        self.slot = slot
        self.timeout_s = timeout_s
        self.output_limit = output_limit
        self.log_dir = log_dir
        extra = {name.upper() for name in secret_names}

        def secret(name: str) -> bool:
            return is_secret_name(name) or name.upper() in extra

        self.env = scrubbed_env(base={key: value for key, value in env.items() if not secret(key)})
        bash = shutil.which("bash", path=self.env.get("PATH")) or shutil.which("bash")
        self.shell = bash or SHELL
        # Longest first, so a secret containing another is replaced whole.
        values = {v for k, v in {**os.environ, **env}.items() if secret(k) and len(v) >= 8}
        self._secret_values = sorted(values, key=len, reverse=True)
        self._next_log = 1
        self.commands_run = 0

    async def __call__(self, tool_input: object) -> ToolResult:
        try:
            data = input_object(tool_input, BASH_NAME)
            if data.get("restart") is True:
                return ToolResult(content="tool has been restarted.")
            if data.get("command") is None:
                raise BadInput("missing required parameter `command` (or `restart: true`)")
            command = as_str(data["command"], "command")
            if not command.strip():
                raise BadInput("`command` is empty: give a shell command to run")
        except BadInput as err:
            return error_result(str(err))
        log_path = self._log_path()
        self.commands_run += 1
        try:
            outcome = await run_shell(
                command,
                cwd=self.root,
                env=self.env,
                stdin=None,
                timeout=self.timeout_s,
                log_path=log_path,
                shell=self.shell,
                heartbeat=False,  # the agent loop heartbeats with its own details
                sandbox=self.sandbox,
                slot=self.slot,
            )
            output = await asyncio.to_thread(_read_output, log_path, self.output_limit)
        except CommandNotStartedError as err:
            return error_result(str(err))
        except OSError as err:
            return error_result(f"the command's output could not be recorded: {err}")
        for value in self._secret_values:
            output = output.replace(value, "[redacted]")
        output = output.rstrip("\n") or "(no output)"
        if outcome.timed_out:
            return error_result(
                f"{output}\n\ntimed out after {self.timeout_s:g} s; the process group was killed"
            )
        code = outcome.exit_code
        if code is not None and code < 0:
            output += f"\n\nkilled by signal {_signal_name(-code)}"
        elif code:
            output += f"\n\nexit code {code}"
        return ToolResult(content=output)

    def _log_path(self) -> Path:
        # Skip numbers in use: a retried activity resuming its transcript keeps the old logs.
        while True:
            path = self.log_dir / f"bash-{self._next_log:04d}.log"
            self._next_log += 1
            if not path.exists():
                return path


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _read_output(log_path: Path, limit: int) -> str:
    """The command's output from its log, cut to head + tail around `limit` characters."""
    head_chars = limit * 2 // 5  # the end (errors, summaries) usually matters more
    tail_chars = limit - head_chars
    size = log_path.stat().st_size
    with log_path.open("rb") as f:
        whole = size <= limit * 8
        if whole:
            text = _RUN_SHELL_NOTE.sub("\n", f.read().decode("utf-8", errors="replace"))
            if len(text) <= limit:
                return text
            head, tail = text[:head_chars], text[-tail_chars:]
        else:  # read only the ends of a huge log
            head_bytes = f.read(head_chars * 4)
            f.seek(size - tail_chars * 4)
            tail_bytes = f.read()
            head = _RUN_SHELL_NOTE.sub("\n", head_bytes.decode("utf-8", errors="replace"))
            tail = _RUN_SHELL_NOTE.sub("\n", tail_bytes.decode("utf-8", errors="replace"))
            head, tail = head[:head_chars], tail[-tail_chars:]
    # Cut at line ends when one is near, so no half lines are shown.
    newline = head.rfind("\n")
    if newline > head_chars * 4 // 5:
        head = head[: newline + 1]
    newline = tail.find("\n")
    if 0 <= newline < tail_chars // 5:
        tail = tail[newline + 1 :]
    if whole:
        omitted = f"{len(text) - len(head) - len(tail):,} characters"
    else:
        omitted = f"about {size - len(head.encode()) - len(tail.encode()):,} bytes"
    return (
        f"{head.rstrip(NEWLINE)}\n\n[... {omitted} cut from the middle of the output; rerun "
        "with a filter (`| tail -n 100`, `| grep PATTERN`) to see other parts ...]\n\n"
        f"{tail}"
    )
