"""The jail around a plan's commands (activities/jail.py), with real processes and real bwrap:
what a specialist can touch, what it can see, and that no attempt works beside its retry."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.claude.tools import BashTool
from activities.command_specialist import CommandSpecialistActivities
from activities.jail import (
    RESOLV_NAME,
    Jail,
    _jail_resolv_conf,
    make_private_tmp,
    remove_private_tmp,
    sandbox_for,
)
from activities.plan_check import check_plan
from activities.process_env import command_env
from cli.temporal_client import resolve_client_settings
from coordinator.environment import CommandEnvironment
from coordinator.execution import PlanCheckInput
from coordinator.plan import Plan
from coordinator.settings import ConfigError
from coordinator.validation import validate_plan_file
from coordinator.work import SpecialistRequest, SpecialistResult
from tests.engine_support import git, make_repo, running_worker, shell_task, start, write_plan
from tests.jail_support import (
    children_left,
    children_named,
    require_bwrap,
    require_own_network,
    running,
    sleeper,
    until_gone,
    until_running,
)


@dataclass(frozen=True)
class Layout:
    """An execution's folders as the worker lays them out: the clone, a task's worktree of
    it, the environment folder."""

    clone: Path
    worktree: Path
    env_dir: Path


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    execution = tmp_path / "workspaces" / "exec-1"
    clone = make_repo(execution / "repo")
    worktree = execution / "worktrees" / "t"
    git(clone, "worktree", "add", "-q", "-b", "coord-task/exec-1/t", str(worktree))
    env_dir = execution / "env"
    # A virtual environment, as setup commands make: its bin/ is first on PATH.
    (env_dir / "bin").mkdir(parents=True)
    (env_dir / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return Layout(clone, worktree, env_dir)


def specialist(layout: Layout, command: str, **overrides: Any) -> SpecialistRequest:
    fields: dict[str, Any] = {
        "execution_id": "exec-1",
        "task_id": "t",
        "task_title": "A task",
        "task_prompt": "Do it.",
        "specialist": "scripted",
        "backend": "command",
        "command": command,
        "timeout_s": 60,
        "cwd": str(layout.worktree),
        "attempt": 1,
        "environment": CommandEnvironment(env_dir=str(layout.env_dir)),
    }
    fields.update(overrides)
    return SpecialistRequest(**fields)


async def run_specialist(tmp_path: Path, request: SpecialistRequest) -> SpecialistResult:
    acts = CommandSpecialistActivities(tmp_path / "artifacts")
    return await ActivityEnvironment().run(acts.run, request)


def outside_places(layout: Layout, tmp_path: Path, probe: str) -> dict[str, Path]:
    """Files a specialist must not change or create: the clone and its git metadata (hooks
    included), the worker's home, the system, the rest of the test's folder."""
    admin = layout.clone / ".git" / "worktrees" / "t"
    return {
        "the clone's files": layout.clone / "README.md",
        "a new file in the clone": layout.clone / f"{probe}.txt",
        "the repository's hooks": layout.clone / ".git" / "hooks" / "post-checkout",
        "the repository's config": layout.clone / ".git" / "config",
        "the worktree's git folder": admin / "HEAD",
        "the worktree's .git file": layout.worktree / ".git",
        "the worker's home": Path.home() / f"{probe}.txt",
        "/etc": Path("/etc") / f"{probe}.txt",
        "/usr/local/bin": Path("/usr/local/bin") / probe,
        "the test's folder": tmp_path / f"{probe}.txt",
    }


def snapshot(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


WRITES_INSIDE = (
    "echo inside > inside.txt; "
    'echo env > "$COORD_ENV_DIR/made-by-the-task"; '
    'echo tmp > "$TMPDIR/scratch" && echo "tmp: $(cat "$TMPDIR/scratch")"; '
    'echo home > "$HOME/.rc" && echo "home: $(cat "$HOME/.rc")"; '
    # git reads its metadata in the jail; the coordinator commits, outside it.
    "git status --porcelain; git log --format=%s -1"
)


def attempts_to_write(places: dict[str, Path]) -> str:
    writes = [f"echo x >> '{path}' && echo \"WROTE {name}\"" for name, path in places.items()]
    writes.append("rm -f .git && echo 'WROTE: removed .git'")
    writes.append("git checkout -q -b elsewhere && echo 'WROTE: another branch'")
    return "; ".join(writes)


# --- what a jailed command can touch ----------------------------------------------------------


async def test_a_jailed_specialist_writes_only_its_worktree_environment_folder_and_tmp(
    layout: Layout, tmp_path: Path
) -> None:
    require_bwrap()
    probe = f"coord-jail-probe-{uuid.uuid4().hex[:8]}"
    places = outside_places(layout, tmp_path, probe)
    before = {name: snapshot(path) for name, path in places.items()}
    command = f"{attempts_to_write(places)}; {WRITES_INSIDE}"
    try:
        result = await run_specialist(tmp_path, specialist(layout, command))
    finally:
        for path in places.values():  # should the jail ever leak, leave no litter
            if probe in path.name:
                path.unlink(missing_ok=True)

    log = Path(result.log_path).read_text()
    # Nothing changed where it matters. (A path under /tmp is in the private /tmp in the
    # jail: a write there lands in a folder that is thrown away.)
    assert {name: snapshot(path) for name, path in places.items()} == before
    assert "WROTE the worker's home" not in log and "WROTE /etc" not in log, log
    assert "WROTE:" not in log
    assert git(layout.worktree, "branch", "--show-current") == "coord-task/exec-1/t"
    assert (layout.worktree / "inside.txt").read_text() == "inside\n"
    assert (layout.env_dir / "made-by-the-task").read_text() == "env\n"
    assert "tmp: tmp\nhome: home\n" in log
    assert "?? inside.txt\ninit\n" in log  # git status and log worked
    assert result.ok


async def test_a_jailed_specialist_sees_no_credentials_of_the_worker(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_bwrap()
    secrets = {
        "ANTHROPIC_API_KEY": "fake-anthropic-value-for-the-jail-test",
        "GITHUB_TOKEN": "fake-github-value-for-the-jail-test",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    # Another process of the worker's user, credentials in its initial environment (what
    # /proc/<pid>/environ shows): the worker itself hides its own so, but not every process.
    bait_values = {"ANTHROPIC_API_KEY": "bait-anthropic-value", "GITHUB_TOKEN": "bait-gh-value"}
    bait = subprocess.Popen(["sleep", "600"], env=bait_values, start_new_session=True)
    try:
        command = (
            "env; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done; "
            f"cat /proc/{bait.pid}/environ /proc/{os.getpid()}/environ; "
            f"test -e /proc/{os.getpid()} && echo 'SEES the worker'; "
            "echo processes: $(ls -d /proc/[0-9]* | wc -l)"
        )
        result = await run_specialist(tmp_path, specialist(layout, command))
    finally:
        bait.kill()
        bait.wait()

    log = Path(result.log_path).read_text()
    for value in [*secrets.values(), *bait_values.values()]:
        assert value not in log
    assert "SEES" not in log
    # Its own PID namespace: bwrap, the shell, and what the shell started.
    assert int(log.rsplit("processes: ", 1)[1].split()[0]) < 10


async def test_a_claude_specialists_bash_runs_in_the_same_jail(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_bwrap()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "fake-anthropic-value-for-the-bash-test")
    probe = f"coord-jail-probe-{uuid.uuid4().hex[:8]}"
    places = outside_places(layout, tmp_path, probe)
    before = {name: snapshot(path) for name, path in places.items()}
    environment = CommandEnvironment(env_dir=str(layout.env_dir))
    env = command_env(environment)
    tmp = make_private_tmp()
    try:
        tool = BashTool(
            layout.worktree,
            env=env,
            log_dir=tmp_path / "bash",
            sandbox=sandbox_for(layout.worktree, environment, env).with_tmp(tmp),
        )
        outside = await tool({"command": attempts_to_write(places)})
        inside = await tool({"command": WRITES_INSIDE})
        again = await tool({"command": 'cat "$TMPDIR/scratch" "$HOME/.rc"; env'})
    finally:
        remove_private_tmp(tmp)
        for path in places.values():
            if probe in path.name:
                path.unlink(missing_ok=True)

    assert {name: snapshot(path) for name, path in places.items()} == before
    assert "WROTE the worker's home" not in outside.content
    assert "Read-only file system" in outside.content
    assert "?? inside.txt\ninit" in inside.content
    # One private /tmp and HOME for the attempt: kept from one command to the next.
    assert again.content.startswith("tmp\nhome\n")
    assert "ANTHROPIC" not in again.content


# --- the network ------------------------------------------------------------------------------


def connects(address: str, port: int, label: str) -> str:
    """A command line printing `CONNECTED <label>` or `REFUSED <label>`."""
    attempt = f"import socket; socket.create_connection(('{address}', {port}), 3)"
    return (
        f'python3 -c "{attempt}" 2>/dev/null && echo "CONNECTED {label}" || echo "REFUSED {label}"'
    )


def host_address() -> str | None:
    """An IPv4 address of this host other than its loopback, if it has one."""
    words = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return next((w for w in words if "." in w and not w.startswith("127.")), None)


def listener(address: str) -> socket.socket:
    """A TCP listener on `address` (a free port): a connection completes in its backlog,
    with nobody accepting, so nothing here depends on timing."""
    server = socket.create_server((address, 0))
    server.listen(8)
    return server


async def test_a_jailed_command_has_a_network_but_not_the_hosts_loopback(
    layout: Layout, tmp_path: Path
) -> None:
    """The Temporal server listens on the host's 127.0.0.1 without authentication: a
    specialist that reached it could start an execution of its own, unjailed, with the
    worker's credentials. In the jail, 127.0.0.1 is the jail's own loopback, and slirp4netns
    (`--disable-host-loopback`) does not lead to the host's through its gateway either."""
    require_own_network()
    local = listener("127.0.0.1")
    address = host_address()
    outside = listener("0.0.0.0") if address is not None else None
    try:
        port = local.getsockname()[1]
        checks = [
            connects("127.0.0.1", port, "host loopback"),
            connects("10.0.2.2", port, "host loopback via the gateway"),
            "grep -q '^tap0' /proc/net/route && echo 'ROUTE tap0'",
            'awk \'$2 == "00000000" {print "DEFAULT via " $1}\' /proc/net/route',
        ]
        if outside is not None and address is not None:
            checks.append(connects(address, outside.getsockname()[1], "host address"))
        result = await run_specialist(tmp_path, specialist(layout, "; ".join(checks)))
        # Outside the jail, the same listener is there.
        socket.create_connection(("127.0.0.1", port), 3).close()
    finally:
        local.close()
        if outside is not None:
            outside.close()

    log = Path(result.log_path).read_text()
    assert "REFUSED host loopback\n" in log, log
    assert "REFUSED host loopback via the gateway" in log, log
    assert "ROUTE tap0" in log and "DEFAULT via tap0" in log, log
    if address is not None:
        assert "CONNECTED host address" in log, log
    assert "CONNECTED host loopback" not in log
    assert "[coord]" not in log  # no note that the network is missing
    assert await children_left("slirp4netns") == []  # it ended with the jail


async def test_the_network_of_a_jail_ends_with_it_when_its_command_is_stopped(
    layout: Layout, tmp_path: Path
) -> None:
    require_own_network()
    token = sleeper()
    request = specialist(layout, f"{token}", timeout_s=600)
    run = asyncio.ensure_future(run_specialist(tmp_path, request))
    await until_running(token)
    assert len(children_named("slirp4netns")) == 1  # the jail is connected while it runs
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert running(token) == []
    assert await children_left("slirp4netns") == []


def test_without_slirp4netns_the_jail_shares_the_network_and_the_worker_says_so(
    layout: Layout,
) -> None:
    jail = Jail(
        "/usr/bin/bwrap",
        "bubblewrap 0.8.0 at /usr/bin/bwrap",
        None,
        "slirp4netns is missing (Debian/Ubuntu: apt-get install slirp4netns)",
    )
    assert jail.available and not jail.isolates_network
    assert jail.describe() == (
        "commands run in a bubblewrap jail (bubblewrap 0.8.0 at /usr/bin/bwrap); jailed "
        "commands share the host's network and can reach services on its loopback, the "
        "Temporal server included, because slirp4netns is missing (Debian/Ubuntu: apt-get "
        "install slirp4netns)"
    )
    environment = CommandEnvironment(env_dir=str(layout.env_dir), confine="required")
    sandbox = sandbox_for(layout.worktree, environment, {}, jail=jail)  # still jailed
    argv = sandbox.with_tmp(Path("/nonexistent")).argv(["true"], cwd=layout.worktree)
    assert argv[0] == "/usr/bin/bwrap" and "--unshare-net" not in argv
    assert "--unshare-uts" in argv and "--unshare-ipc" in argv


async def test_the_plan_check_warns_a_plan_requiring_the_jail_where_the_network_is_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jail = Jail("/usr/bin/bwrap", "bubblewrap", None, "slirp4netns is missing")
    monkeypatch.setattr("activities.plan_check.worker_jail", lambda: jail)
    repo = make_repo(tmp_path / "repo")
    task = {"id": "t", "title": "T", "specialist": "shell", "prompt": "true"}
    plan = Plan.model_validate(
        {
            "name": "p",
            "repository": str(repo),
            "reviewer": None,
            "confine": "required",
            "tasks": [task],
        }
    )
    request = PlanCheckInput(plan=plan, plan_dir=str(tmp_path), workspace=str(repo))
    check = await ActivityEnvironment().run(check_plan, request)
    assert check.errors == []
    (warning,) = [w for w in check.warnings if "confine" in w]
    assert "jails the filesystem, but jailed commands share the host's network" in warning
    assert "the Temporal server included, because slirp4netns is missing" in warning


def test_a_resolver_on_the_hosts_loopback_is_replaced_by_slirp4netnss_in_the_jail(
    tmp_path: Path,
) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("# stub\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n")
    assert _jail_resolv_conf(tmp_path, host) == [
        "--ro-bind",
        str(tmp_path / RESOLV_NAME),
        str(host),
    ]
    assert (tmp_path / RESOLV_NAME).read_text() == ("# stub\nnameserver 10.0.2.3\noptions edns0\n")
    host.write_text("nameserver 192.0.2.53\n")  # reachable from the jail as it is
    assert _jail_resolv_conf(tmp_path, host) == []


# --- no attempt beside its retry --------------------------------------------------------------

# The first run holds a lock until it is stopped; a run that cannot take the lock would be
# working beside another one.
OVERLAP_PROBE = (
    'R="$COORD_ENV_DIR/runs"; exec 9>> "$COORD_ENV_DIR/lock"; '
    'flock -n 9 || echo overlap >> "$R"; echo run >> "$R"; '
    '[ "$(grep -c run "$R")" -gt 1 ] || {first}; echo done > done.txt'
)


async def test_what_a_jailed_command_left_behind_goes_with_the_jail_in_any_session(
    layout: Layout, tmp_path: Path
) -> None:
    # A background child in the group and one that left it (a session of its own): the
    # worker does not look for either once bwrap exited; the PID namespace takes both.
    require_bwrap()
    stays, leaves = sleeper(), sleeper()
    command = f"{stays} & setsid {leaves} & echo started"
    result = await run_specialist(tmp_path, specialist(layout, command))

    assert result.ok, result.output_tail
    await until_gone(stays, timeout=5)
    await until_gone(leaves, timeout=5)


async def test_a_retry_stops_what_the_attempt_before_it_left_running(
    layout: Layout, tmp_path: Path, confine_mode: str
) -> None:
    first = sleeper()
    acts = CommandSpecialistActivities(tmp_path / "artifacts")
    request = specialist(layout, OVERLAP_PROBE.format(first=first))
    # Attempt 1 is no longer awaited by anyone (its activity timed out on the server) but
    # its command runs on; Temporal starts attempt 2 of the same activity.
    earlier = asyncio.ensure_future(ActivityEnvironment().run(acts.run, request))
    await until_running(first)
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    result = await retry.run(acts.run, request)

    assert result.ok, result.output_tail
    assert (layout.env_dir / "runs").read_text().split() == ["run", "run"]  # no overlap
    stopped = await asyncio.wait_for(earlier, 30)
    assert not stopped.ok
    assert running(first) == []
    assert "left running by an earlier attempt" in Path(result.log_path).read_text()


async def test_an_attempt_timed_out_on_a_living_worker_is_stopped_before_its_retry(
    client: Client,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    confine_mode: str,
) -> None:
    """The worker lives, but the server gave up on the attempt (its heartbeats stopped, as
    on a blocked or cut-off worker): the retry, here on the same worker, stops it first."""
    beat = activity.heartbeat

    def heartbeat(*details: Any) -> None:
        info = activity.info()
        if info.activity_type == "run_command_specialist" and info.attempt == 1:
            return
        beat(*details)

    monkeypatch.setattr(activity, "heartbeat", heartbeat)
    make_repo(tmp_path / "repo")
    first = sleeper()
    task = shell_task("slow", OVERLAP_PROBE.format(first=first))
    plan = write_plan(tmp_path, {"setup": [{"name": "env", "run": "true"}], "tasks": [task]})
    async with running_worker(client, task_queue, tmp_path) as workspaces:
        handle = await start(client, task_queue, plan)
        await until_running(first, 60)
        report = await asyncio.wait_for(handle.result(), 180)

    assert report.status == "Complete", report.to_markdown()
    runs = workspaces / handle.id / "env" / "runs"
    assert runs.read_text().split() == ["run", "run"]  # no overlap
    assert [(t.id, t.status, t.attempts) for t in report.tasks] == [("slow", "passed", 1)]
    assert running(first) == []


# --- confine: required ------------------------------------------------------------------------


async def test_a_plan_requiring_the_jail_does_not_start_without_it(
    client: Client, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORD_CONFINE", "off")  # as on a worker without bwrap
    make_repo(tmp_path / "repo")
    marker = tmp_path / "repo" / "ran.txt"
    plan = write_plan(
        tmp_path, {"confine": "required", "tasks": [shell_task("t", f"touch {marker}")]}
    )
    async with running_worker(client, task_queue, tmp_path):
        report = await (await start(client, task_queue, plan)).result()

    assert report.status == "Failed"
    (problem,) = [p for p in report.problems if "confine" in p]
    assert problem.startswith("confine: required, but the worker on ")
    assert "cannot jail commands: turned off on this worker (COORD_CONFINE=off)" in problem
    assert not marker.exists()


async def test_commands_of_a_plan_requiring_the_jail_refuse_to_run_without_it(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORD_CONFINE", "off")
    environment = CommandEnvironment(env_dir=str(layout.env_dir), confine="required")
    request = specialist(layout, "touch ran.txt", environment=environment)
    with pytest.raises(ApplicationError) as info:
        await run_specialist(tmp_path, request)
    assert info.value.type == "JailUnavailable" and info.value.non_retryable
    assert "task t (scripted): the plan says `confine: required`, but turned off" in str(info.value)
    assert not (layout.worktree / "ran.txt").exists()


async def test_the_plan_check_passes_a_plan_requiring_the_jail_where_bwrap_works(
    tmp_path: Path,
) -> None:
    require_bwrap()
    repo = make_repo(tmp_path / "repo")
    task = {"id": "t", "title": "T", "specialist": "shell", "prompt": "true"}
    plan = Plan.model_validate(
        {
            "name": "p",
            "repository": str(repo),
            "reviewer": None,
            "confine": "required",
            "tasks": [task],
        }
    )
    request = PlanCheckInput(plan=plan, plan_dir=str(tmp_path), workspace=str(repo))
    check = await ActivityEnvironment().run(check_plan, request)
    assert check.errors == []


def test_confine_takes_three_values_and_says_which(tmp_path: Path) -> None:
    make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path, {"confine": "sometimes", "tasks": [shell_task("t", "true")]})
    result = validate_plan_file(plan)
    assert [str(p) for p in result.errors] == [
        f"{plan}:4: confine: must be 'auto', 'required' or 'off', got 'sometimes'"
    ]


def test_the_workers_setting_comes_from_the_yaml_or_coord_confine(tmp_path: Path) -> None:
    config = tmp_path / "temporal-dev.yaml"
    config.write_text("worker:\n  confine: off\n")
    assert resolve_client_settings(config_path=config, environ={}).confine == "off"
    environ = {"COORD_CONFINE": "AUTO"}
    assert resolve_client_settings(config_path=config, environ=environ).confine == "auto"
    with pytest.raises(ConfigError, match="COORD_CONFINE='maybe': expected auto or off"):
        resolve_client_settings(config_path=config, environ={"COORD_CONFINE": "maybe"})
    config.write_text("worker:\n  confine: required\n")
    with pytest.raises(ConfigError, match=r"worker\.confine"):
        resolve_client_settings(config_path=config, environ={})
