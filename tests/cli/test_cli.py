"""The `coord` command as users and scripts run it: real processes against a real server."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from coordinator.execution import build_execution_input
from coordinator.validation import validate_plan_file
from tests.cli_support import COORD, coord
from tests.conftest import EXAMPLES, free_port
from workflows.execution import ExecutionWorkflow

DEMO_PLAN = EXAMPLES / "hello-service" / "plan.yaml"


async def test_run_wait_status_list_report(cli_env: dict[str, str], worker: None) -> None:
    # Unique per run: ids are never reused, and TEMPORAL_ADDRESS may be a lasting server.
    eid = f"demo-{uuid.uuid4().hex[:8]}"
    code, out, err = await coord("run", str(DEMO_PLAN), "--wait", "--id", eid, env=cli_env)
    assert code == 0, err
    assert f"started execution {eid}" in out, err
    assert f"Web UI: http://ui.example:8233/namespaces/default/workflows/{eid}" in out
    assert "### Final Status: Complete" in out

    code, out, err = await coord("status", eid, "--json", env=cli_env)
    progress = json.loads(out)
    assert progress["status"] == "completed"
    assert [t["id"] for t in progress["tasks"]] == [
        "farewell",
        "shout",
        "version",
        "cli",
        "cli-tests",
    ]
    assert {t["status"] for t in progress["tasks"]} == {"passed"}
    assert progress["workspace"]["branch"] == f"coord/{eid}"

    code, out, err = await coord("report", eid, "--json", env=cli_env)
    assert code == 0
    assert json.loads(out)["status"] == "Complete"

    # Visibility is eventually consistent: the list may take a moment to show the run.
    for _ in range(50):
        code, out, err = await coord("list", "--status", "completed", "--json", env=cli_env)
        if any(row["execution_id"] == eid for row in json.loads(out)):
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"{eid} not listed as completed: {out}")

    code, out, err = await coord("run", str(DEMO_PLAN), "--id", eid, env=cli_env)
    assert code == 2
    assert f"an execution with id '{eid}' already exists" in err

    code, out, err = await coord("cancel", eid, env=cli_env)
    assert (code, err.strip()) == (
        1,
        f"error: {eid} has already ended (completed); nothing to cancel",
    )

    # A phase's id, as the Web UI shows it, is not an execution.
    code, out, err = await coord("status", f"{eid}/setup", env=cli_env)
    assert code == 2
    assert "is a SetupPhase workflow, not an execution" in err


@pytest.mark.parametrize("bad_id", ["../../examples", "has space", "a..b", "UPPER"])
async def test_execution_ids_that_could_escape_or_break_are_refused(
    cli_env: dict[str, str], bad_id: str
) -> None:
    code, _out, err = await coord("run", str(DEMO_PLAN), "--id", bad_id, env=cli_env)
    assert code == 2
    assert f"execution id '{bad_id}' must be" in err


async def test_report_of_a_terminated_execution_says_why(
    client: Client, cli_env: dict[str, str]
) -> None:
    eid = f"terminated-{uuid.uuid4().hex[:8]}"
    plan = validate_plan_file(DEMO_PLAN).plan
    assert plan is not None
    request = build_execution_input(plan, DEMO_PLAN, execution_id=eid)
    handle = await client.start_workflow(
        ExecutionWorkflow.run, request, id=eid, task_queue="nobody-polls-this"
    )
    await handle.terminate(reason="operator stopped it")
    code, _out, err = await coord("report", eid, env=cli_env)
    assert code == 1
    assert f"error: {eid} ended without a report: operator stopped it" in err
    assert "Traceback" not in err


async def test_invalid_plan_exits_2_with_located_errors(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: broken\nrepository: .\ntasks:\n"
        "  - {id: a, title: A, specialist: shell, depends_on: [b]}\n"
        "  - {id: b, title: B, specialist: shell, depends_on: [a]}\n"
    )
    code, _out, err = await coord("run", str(plan), env=cli_env)
    assert code == 2
    assert "a -> b -> a" in err
    assert "plan.yaml:4" in err


async def test_unreachable_server_is_one_line_and_exit_4(
    cli_env: dict[str, str],
) -> None:
    env = {**cli_env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    code, _out, err = await coord("status", "anything", env=env)
    assert code == 4
    assert err.strip().count("\n") == 0
    assert "cannot reach Temporal at 127.0.0.1:" in err
    assert "Traceback" not in err


async def test_unknown_execution_is_a_clear_error(cli_env: dict[str, str]) -> None:
    code, _out, err = await coord("status", "no-such-execution", env=cli_env)
    assert code == 2
    assert "no execution with id 'no-such-execution'" in err


async def test_worker_process_runs_executions_and_stops_cleanly_on_sigterm(
    cli_env: dict[str, str],
) -> None:
    proc = await asyncio.create_subprocess_exec(
        *COORD,
        "worker",
        env=cli_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        _code, out, err = await coord("run", str(DEMO_PLAN), "--wait", "--json", env=cli_env)
        assert json.loads(out)["status"] == "Complete", err
    finally:
        proc.send_signal(signal.SIGTERM)
        log = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    assert proc.returncode == 0, log
    assert "worker connected to" in log
    assert "worker stopped" in log


async def test_the_needs_a_human_example_through_the_cli(
    cli_env: dict[str, str], worker: None
) -> None:
    """The README's walkthrough, against the real workflow: watch stops at the escalation
    with the command to answer, resolve answers it, watch follows it to Complete."""
    plan = EXAMPLES / "needs-a-human" / "plan.yaml"
    eid = f"card-{uuid.uuid4().hex[:8]}"
    code, out, err = await coord("run", str(plan), "--id", eid, env=cli_env)
    assert code == 0, err

    code, out, err = await coord("watch", eid, env=cli_env, timeout=120)
    assert code == 3, out + err
    assert "greeting.txt says 'Hello'" in out
    assert f"coord resolve {eid}" in out and "--retry --guidance" in out

    code, out, err = await coord("resolve", eid, "--skip", "--guidance", "x", env=cli_env)
    assert code == 2  # guidance goes with --retry only
    code, out, err = await coord("resolve", eid, "--abort", "--budget", "5", env=cli_env)
    assert code == 2 and "--budget goes with --retry only" in err
    code, out, err = await coord("resolve", eid, "--retry", "--budget", "5", env=cli_env)
    assert code == 2 and "not about a budget" in out + err  # refused by the workflow
    code, out, err = await coord("resolve", eid, "--retry", "--guidance", "Bonjour", env=cli_env)
    assert code == 0, out + err

    code, out, err = await coord("watch", eid, env=cli_env, timeout=120)
    assert code == 0, out + err
    assert "### Final Status: Complete" in out
    code, out, err = await coord("report", eid, "--json", env=cli_env)
    report = json.loads(out)
    assert {t["id"]: t["status"] for t in report["tasks"]} == {
        "greeting": "passed",
        "farewell": "passed",
        "card": "passed",
    }
    assert report["escalations"][0]["answer"]["guidance"] == "Bonjour"
