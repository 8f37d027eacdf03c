"""The gate activity and the process runner beneath it, with real processes."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import process
from activities.gates import GateActivities
from activities.process import run_shell, safe_name
from activities.process_env import is_secret_name, scrubbed_env
from coordinator.environment import CommandEnvironment
from coordinator.plan import Gate
from coordinator.work import OUTPUT_TAIL_BYTES, GateRequest, GateResult
from tests.jail_support import running, sleeper, until_gone, until_running


def alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie is dead: in a container whose PID 1 is no init, killed
    orphans stay zombies forever."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


async def read_pid(path: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text().strip() if path.exists() else ""
        if text.endswith("."):  # written in full
            return int(text[:-1])
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def request(
    cwd: Path,
    run: str,
    *,
    expect: str = "exit_zero",
    timeout: int = 10,
    name: str = "check",
    **overrides: Any,
) -> GateRequest:
    fields: dict[str, Any] = {
        "execution_id": "exec-1",
        "level": "task",
        "scope": "schema",
        "gate": Gate(name=name, run=run, expect=expect, timeout=timeout),
        "cwd": str(cwd),
        "attempt": 1,
    }
    fields.update(overrides)
    return GateRequest(**fields)


@pytest.fixture
def gates(tmp_path: Path) -> GateActivities:
    return GateActivities(tmp_path / "artifacts")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


async def run_gate(gates: GateActivities, req: GateRequest) -> GateResult:
    return await ActivityEnvironment().run(gates.run_gate, req)


async def test_exit_zero_passes_and_fails_on_the_exit_code(
    gates: GateActivities, repo: Path
) -> None:
    ok = await run_gate(gates, request(repo, "echo all good"))
    assert (ok.passed, ok.exit_code, ok.timed_out) == (True, 0, False)
    assert ok.output_tail == "all good\n"

    bad = await run_gate(gates, request(repo, "echo 'E501 line too long' >&2; exit 3", name="lint"))
    assert (bad.passed, bad.exit_code, bad.timed_out) == (False, 3, False)
    assert bad.output_tail == "E501 line too long\n"  # stderr is part of the output
    assert (bad.name, bad.level, bad.scope, bad.expect) == ("lint", "task", "schema", "exit_zero")


@pytest.mark.parametrize(
    ("run", "passed"),
    [
        ("true", True),
        ("printf '\\n  \\n'", True),  # whitespace only counts as no output
        ("echo main.go", False),  # exit 0 with output: gofmt -l found a file
        ("echo warning >&2", False),
        ("exit 1", False),  # no output, but a failure
    ],
)
async def test_empty_output_needs_exit_zero_and_no_output(
    gates: GateActivities, repo: Path, run: str, passed: bool
) -> None:
    result = await run_gate(gates, request(repo, run, expect="empty_output"))
    assert result.passed is passed
    assert result.expect == "empty_output"


async def test_timeout_kills_the_whole_process_group(
    gates: GateActivities, repo: Path, confine_mode: str
) -> None:
    # A grandchild in the background plus a foreground sleep: both must go at the timeout.
    child, foreground = sleeper(), sleeper()
    run = f"{child} & echo waiting; {foreground}"
    started = time.monotonic()
    result = await run_gate(gates, request(repo, run, timeout=1))
    elapsed = time.monotonic() - started

    assert (result.passed, result.timed_out, result.exit_code) == (False, True, None)
    assert result.output_tail == "waiting\n"
    assert 1 <= elapsed < 6
    assert running(child) == running(foreground) == []
    assert "timed out after 1 s" in Path(result.log_path).read_text()


async def test_background_children_do_not_outlive_a_finished_gate(
    gates: GateActivities, repo: Path, confine_mode: str
) -> None:
    # The child holds the output pipe open: without stopping the group we would wait for it.
    child = sleeper()
    started = time.monotonic()
    result = await run_gate(gates, request(repo, f"{child} & echo ok"))
    assert result.passed
    assert time.monotonic() - started < 5
    await until_gone(child, timeout=5)  # in the jail: killed with its PID namespace


async def test_output_tail_is_bounded_and_the_log_keeps_everything(
    gates: GateActivities, repo: Path
) -> None:
    run = "yes 'é0123456789abcdef' | head -c 1100000; echo; echo last line"
    result = await run_gate(gates, request(repo, run))

    assert result.passed
    assert len(result.output_tail.encode()) <= OUTPUT_TAIL_BYTES
    assert len(result.output_tail) > OUTPUT_TAIL_BYTES // 2
    assert result.output_tail.endswith("\nlast line\n")
    assert "\ufffd" not in result.output_tail  # not cut inside a character
    log = Path(result.log_path).read_bytes()
    assert len(log) == 1100000 + len(b"\nlast line\n")
    assert log.startswith("é0123456789abcdef\n".encode())


async def test_log_file_layout(gates: GateActivities, repo: Path, tmp_path: Path) -> None:
    req = request(repo, "echo hi", name="unit tests", level="layer", scope="L1", attempt=2)
    result = await run_gate(gates, req)
    gates_dir = tmp_path / "artifacts" / "exec-1" / "gates"
    assert Path(result.log_path) == gates_dir / f"layer-L1-{safe_name('unit tests')}-2.log"
    assert safe_name("unit tests").startswith("unit_tests-")
    assert Path(result.log_path).read_text() == "hi\n"

    # A Temporal retry of the same activity writes beside it, not over it.
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2)
    retried = await env.run(gates.run_gate, req)
    assert Path(retried.log_path) == gates_dir / f"layer-L1-{safe_name('unit tests')}-2.try2.log"
    assert Path(result.log_path).exists()


async def test_a_gate_sees_only_base_variables_and_what_the_plan_passes(
    gates: GateActivities, repo: Path, monkeypatch: pytest.MonkeyPatch, confine_mode: str
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "hush-1")
    monkeypatch.setenv("GITHUB_TOKEN", "hush-2")
    monkeypatch.setenv("DEPLOY_TOKEN", "hush-3")
    monkeypatch.setenv("COORD_TEST_PLAIN", "not-passed")
    monkeypatch.setenv("LANG", "C.UTF-8")
    environment = CommandEnvironment(env={"PLAN_VAR": "from-plan"})
    req = request(repo, "env > env.txt", env={"GATE_MODE": "strict"}, environment=environment)
    result = await run_gate(gates, req)

    assert result.passed
    text = (repo / "env.txt").read_text()
    assert "hush-" not in text
    seen = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert "COORD_TEST_PLAIN" not in seen  # the worker's own variables stay with it
    assert (seen["GATE_MODE"], seen["PLAN_VAR"], seen["LANG"]) == ("strict", "from-plan", "C.UTF-8")
    assert seen["PATH"] == os.environ["PATH"]
    # A HOME and a temp folder of its own, gone afterwards; never the worker's.
    assert seen["HOME"] == f"{seen['TMPDIR']}/home" and seen["HOME"] != os.environ.get("HOME")
    if confine_mode == "jail":
        assert seen["TMPDIR"] == "/tmp"
    else:
        assert not Path(seen["TMPDIR"]).exists()  # removed after the command


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("ANTHROPIC_API_KEY", True),
        ("ANTHROPIC_BASE_URL", True),
        ("GITHUB_TOKEN", True),
        ("GH_TOKEN", True),
        ("TEMPORAL_API_KEY", True),
        ("TEMPORAL_TLS_KEY", True),
        ("NPM_TOKEN", True),
        ("openai_api_key", True),
        ("CLIENT_SECRET", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("PATH", False),
        ("HOME", False),
        ("TEMPORAL_ADDRESS", False),
        ("TOKENIZERS_PARALLELISM", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret
    assert (name in scrubbed_env(base={name: "x"})) is not secret


async def test_cancel_kills_the_process_group_and_raises(
    gates: GateActivities, repo: Path, confine_mode: str
) -> None:
    env = ActivityEnvironment()
    # Beats every 0.2 s (a third of the heartbeat timeout), the first after 0.2 s.
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.6))
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    child, foreground = sleeper(), sleeper()
    run = f"{child} & {foreground}"
    task = asyncio.ensure_future(env.run(gates.run_gate, request(repo, run, timeout=60)))
    await until_running(child)
    await until_running(foreground)
    # It heartbeats while the command runs: that is how a Temporal cancel reaches it.
    for _ in range(600):
        if beats:
            break
        await asyncio.sleep(0.05)
    assert beats and beats[0][0] == "gate check"

    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert running(child) == running(foreground) == []


async def test_missing_cwd_is_a_non_retryable_error(gates: GateActivities, tmp_path: Path) -> None:
    gone = tmp_path / "no-such-worktree"
    with pytest.raises(ApplicationError) as info:
        await run_gate(gates, request(gone, "true"))
    assert info.value.non_retryable
    assert str(gone) in str(info.value)


async def test_stdin_is_fed_while_output_is_read(tmp_path: Path) -> None:
    # 256 KB out before reading 1 MB in: both pipes fill up unless written and read at once.
    data = "x" * 1_000_000
    outcome = await run_shell(
        "head -c 262144 /dev/zero; cat > in.txt; echo read",
        cwd=tmp_path,
        env=scrubbed_env(),
        stdin=data,
        timeout=10,
        log_path=tmp_path / "logs" / "feed.log",
    )
    assert (outcome.exit_code, outcome.output_bytes) == (0, 262144 + len("read\n"))
    assert (tmp_path / "in.txt").read_text() == data


async def test_a_process_escaping_the_group_does_not_hang_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "DRAIN_TIMEOUT_S", 0.5)
    # setsid: a new session, out of reach of the group kill, holding the output pipe.
    # Wait for the escape to be done: otherwise the group kill after exit can win the race
    # and kill `setsid` before it left the group.
    command = (
        "setsid sh -c 'echo $$. > escaped.pid; exec sleep 1000' & "
        "while [ ! -s escaped.pid ]; do sleep 0.05; done; echo started"
    )
    try:
        outcome = await run_shell(
            command,
            cwd=tmp_path,
            env=scrubbed_env(),
            stdin=None,
            timeout=10,
            log_path=tmp_path / "escape.log",
        )
    finally:
        os.kill(await read_pid(tmp_path / "escaped.pid"), signal.SIGKILL)
    assert outcome.exit_code == 0
    assert outcome.output_tail == "started\n"
    assert "a process left its group" in (tmp_path / "escape.log").read_text()
