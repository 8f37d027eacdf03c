"""How one Claude Code run is started: its config folder, its environment, its jail.

- Config: every task attempt of an execution has its own `CLAUDE_CONFIG_DIR` on the host
  (`<artifacts>/<execution>/tasks/<task>/attempt-N.claude-code/config`), holding Claude
  Code's sessions and settings, so parallel agents never share a `~/.claude.json` and a
  retried activity finds the session it resumes.
- Environment: the plan's command environment (`activities.process_env.command_env`: the
  worker's base variables, the plan's `env` and `env_from`), Claude Code's own switches
  (no telemetry, no auto-update, no nonessential traffic, `IS_SANDBOX=1` as root, where it
  otherwise refuses to bypass permissions) and the API key. The SDK merges the worker's
  whole environment under what it is given; the launcher script drops every other worker
  variable again before Claude Code starts, so the worker's secrets stay out.
- Jail: where the worker jails commands (activities/jail.py), Claude Code itself runs in
  that bubblewrap jail: the worktree and its config folder writable, the system, the
  worker's Python (where the bundled CLI is) and the context documents read-only, git
  metadata read-only, a private /tmp and HOME, its own PID namespace, and it dies with the
  worker. It shares the host's network (it must reach the API; slirp4netns needs the
  jail's PID, which the SDK's process start does not give): see docs/claude-code.md.
  Unjailed, it is still tied to the worker's life (`setpriv --pdeathsig`).
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from activities.jail import Sandbox, sandbox_for
from activities.process_env import command_env
from activities.task_turn import task_dir
from coordinator.claude import ClaudeSettings
from coordinator.claude_code import SUBAGENT_TOOLS, tool_names
from coordinator.specialists import BUILTIN_DIR, Specialist, load_registry
from coordinator.work import SpecialistRequest

# Worker variables Claude Code may need besides the key: where the API is, its retries, and
# how to get there (proxies, the certificates of a TLS-inspecting one).
PASSED_THROUGH = (
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_MAX_RETRIES",
    "API_TIMEOUT_MS",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
QUIET = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
}
LAUNCHER_NAME = "claude-launcher.sh"
PID_NAME = "claude-code.pid"


@dataclass(frozen=True)
class Launch:
    """Everything a run needs besides the prompt: `launcher` is the script the SDK starts
    as Claude Code (it drops the worker's variables and enters the jail)."""

    launcher: Path
    cwd: Path
    config_dir: Path
    env: dict[str, str]
    jailed: bool

    @property
    def pid_file(self) -> Path:
        """Where the launcher writes its pid (then Claude Code's, or its jail's: it execs)."""
        return self.launcher.with_name(PID_NAME)


def run_dir(artifacts_root: Path, request: SpecialistRequest) -> Path:
    """The attempt's own folder on the host: config, launcher, state, transcript."""
    return task_dir(artifacts_root, request) / f"attempt-{request.attempt}.claude-code"


def prepare(request: SpecialistRequest, folder: Path, cli: Path, tmp: Path, api_key: str) -> Launch:
    """The config folder, environment and launcher of one run. Raises MissingVariableError
    (env_from) and JailUnavailableError (confine: required) for the caller to report."""
    config = folder / "config"
    config.mkdir(parents=True, exist_ok=True)
    cwd = Path(request.cwd)
    env = command_env(request.environment)
    sandbox = sandbox_for(cwd, request.environment, env, readable=[*request.context_paths, cli])
    # Its sessions live in the config folder: writable, in the jail too. No own network.
    sandbox = replace(sandbox, writable=(*sandbox.writable, config), slirp4netns=None)
    sandbox = sandbox.with_tmp(tmp)
    env = sandbox.env(env, tmp)
    env.update(QUIET)
    env.update({name: os.environ[name] for name in PASSED_THROUGH if os.environ.get(name)})
    env["CLAUDE_CONFIG_DIR"] = str(config)
    env["ANTHROPIC_API_KEY"] = api_key
    # Not CLAUDE_CODE_SUBPROCESS_ENV_SCRUB: with it this Claude Code requires its own Bash
    # sandbox (refusing loops, variables and `env` without a human to approve, and failing
    # where its dependencies are missing), so the agent's shell sees the key; what the run
    # leaves behind is redacted instead (redact.py).
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"
    launcher = folder / LAUNCHER_NAME
    write_launcher(launcher, sandbox, cli, cwd, keep=set(env))
    return Launch(
        launcher=launcher, cwd=cwd, config_dir=config, env=env, jailed=sandbox.bwrap is not None
    )


def write_launcher(path: Path, sandbox: Sandbox, cli: Path, cwd: Path, keep: set[str]) -> None:
    """A script that starts Claude Code as the SDK asks, with the worker's other variables
    dropped (the SDK's own, `CLAUDE_*`, stay) and inside the jail. It lives outside every
    folder the agent can write, so nothing the agent does changes how the next run starts."""
    drop = sorted(
        name for name in os.environ if name not in keep and not name.startswith("CLAUDE_")
    )
    argv = sandbox.argv([str(cli)], cwd=cwd)
    prefix: list[str] = []
    if sandbox.bwrap is None and (setpriv := shutil.which("setpriv")):
        prefix = [setpriv, "--pdeathsig", "KILL"]  # dies with the worker, as bwrap's does
    unset = [arg for name in drop for arg in ("-u", name)]
    command = shlex.join([*prefix, "/usr/bin/env", *unset, *argv])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "#!/bin/sh\n# Written by coord for one Claude Code run (activities/claude_code/launch.py)"
        f"\necho $$ > {shlex.quote(str(path.with_name(PID_NAME)))}"
        f'\nexec {command} "$@"\n',
        encoding="utf-8",
    )
    path.chmod(0o700)


def subagents(
    spec: Specialist, request: SpecialistRequest, settings: ClaudeSettings
) -> dict[str, dict[str, object]]:
    """For a specialist with `Task` (or `Agent`): the plan's other agent definitions (the
    built-ins, the worktree's `.claude/agents/` and the folder its own file is in), as
    Claude Code agents. Only those whose tools the lead holds itself are offered, so a
    reader cannot hand writing to a writer; an agent with Claude Code's default set (no
    `tools:`) is never offered. Command specialists are not agents and are left out."""
    held = set(tool_names(spec.tools))
    if not SUBAGENT_TOOLS & held:
        return {}
    held |= SUBAGENT_TOOLS  # the same tool under its two names
    source = request.specialist_source
    folder = None if source.startswith("builtin:") else Path(source).parent
    if folder == BUILTIN_DIR:
        folder = None
    registry = load_registry(specialists_dir=folder, repository=Path(request.cwd))
    agents: dict[str, dict[str, object]] = {}
    for other in registry.all():
        if other.name == spec.name or other.backend == "command":
            continue
        tools = tool_names(other.tools)
        if not tools or not set(tools) <= held:
            continue
        model = other.model
        agents[other.name] = {
            "description": other.description,
            "prompt": other.prompt,
            "tools": tools,
            "disallowedTools": other.disallowed_tools or None,
            "maxTurns": other.max_turns,
            "model": settings.resolve_model(model) if model and model != "inherit" else None,
        }
    return agents
