"""The pull request's body speaks to a reviewer (coordinator/pull_request.py, pure)."""

from __future__ import annotations

import ipaddress
import socket

from coordinator.escalation import Action, Approval, ApprovalAnswer, Escalation, Resolution
from coordinator.handoff import HandoffState, PullRequestRef
from coordinator.pull_request import _ipv4_shorthand, pull_request_body, reachable
from coordinator.report import (
    ExecutionReport,
    GateSummary,
    PhaseState,
    Spend,
    TaskState,
    Workspace,
)

ROOT = "/home/ops/.coord/workspaces/add-faces-3f2a"
QUEUE = "coordinator@build-7-3f2a9c01"


def escalations() -> list[Escalation]:
    """One answered with guidance (its reason names a worktree), one skipped."""
    return [
        Escalation(
            id="esc-1",
            phase="implementation",
            task_id="schema",
            reason=f"gate lint failed 3 times in {ROOT}/worktrees/schema",
            question="?",
            state="answered",
            answer=Resolution(action=Action.RETRY, guidance="use uuid keys", by="ana"),
        ),
        Escalation(
            id="esc-2",
            phase="implementation",
            task_id="api",
            reason="specialist failed 3 times",
            question="?",
            state="answered",
            answer=Resolution(action=Action.SKIP, by="ana"),
        ),
    ]


def report() -> ExecutionReport:
    gate = GateSummary(name="lint", level="task", scope="schema", passed=True)
    return ExecutionReport(
        execution_id="add-faces-3f2a",
        plan_name="add-faces",
        status="Partial",
        phases=[PhaseState(name="setup", status="done", summary=f"cloned into {ROOT}/repo")],
        tasks=[
            TaskState(
                id="schema",
                title="Create the faces table",
                specialist="database-specialist",
                status="passed",
                attempts=3,
                gates=[gate],
                tokens=12000,
                cost_usd=0.42,
            ),
            TaskState(id="api", title="The /v1/faces handler", status="skipped", attempts=3),
        ],
        workspace=Workspace(
            path=f"{ROOT}/repo",
            branch="coord/add-faces-3f2a",
            base_branch="main",
            base_commit="a" * 40,
            head_commit="b" * 40,
            host_queue=QUEUE,
            home="/mnt/shared/add-faces-3f2a.git",
            moves=1,
            former_dirs=["/srv/other-host/workspaces/add-faces-3f2a"],
        ),
        gates=[GateSummary(name="tests", level="system", scope="execution", passed=False)],
        gate_totals={"task": (1, 1), "system": (0, 1)},
        escalations=escalations(),
        approvals=[
            Approval(
                name="before_handoff",
                question="?",
                state="approved",
                answer=ApprovalAnswer(by="lead", reason="looks right"),
            )
        ],
        review=f"approve after 1 round(s): see {ROOT}/repo/db/schema.sql",
        handoff=HandoffState(
            repo="acme/app",
            enabled=True,
            branch="coord/add-faces-3f2a",
            pushed_head="b" * 40,
            pull_request=PullRequestRef(number=7, url="https://github.com/acme/app/pull/7"),
        ),
        spend=[Spend(scope="review", tokens=600, cost_usd=0.01)],
        budget_usd=5.0,
        problems=[
            f"status comment not updated: no worker on {QUEUE} picked it up",
            "final push failed: git push in /srv/other-host/workspaces/add-faces-3f2a/repo "
            "(see /var/log/coord/push.log, http://127.0.0.1:8233/namespaces/default)",
        ],
        human_todo=["Push coord/add-faces-3f2a and open its pull request yourself."],
    )


def test_the_body_says_what_a_reviewer_needs() -> None:
    body = pull_request_body(report(), "http://127.0.0.1:8233/namespaces/default/workflows/x")

    assert body.startswith("## coord: add-faces\n\n**Partial**: 1 of 2 tasks done, 1 skipped")
    assert "6 attempts; 12600 tokens, $0.43 of a $5.00 budget" in body
    assert (
        "| schema | Create the faces table | database-specialist | passed | 3 | 1/1 "
        "| 12000 | $0.42 |" in body
    )
    assert "| api | The /v1/faces handler | - | skipped | 3 | - | - | - |" in body  # as written
    assert (
        "Passed: task 1/1, system 0/1." in body
        and "| system | execution | tests | FAILED |" in body
    )
    assert (
        "- `esc-1` (implementation, task schema): gate lint failed 3 times in worktrees/schema "
        '→ retry with guidance "use uuid keys" by ana' in body
    )
    assert "- `esc-2` (implementation, task api): specialist failed 3 times → skip by ana" in body
    assert "- before_handoff: approved by lead (looks right)" in body
    assert "approve after 1 round(s): see db/schema.sql" in body
    assert "- Pull request [#7](https://github.com/acme/app/pull/7)" in body
    assert "`coord/add-faces-3f2a` from `main` at `aaaaaaaaaaaa`, head `bbbbbbbbbbbb`" in body
    assert "Every detail: `coord report add-faces-3f2a`" in body
    assert "- status comment not updated: no worker on (worker queue) picked it up" in body
    assert "git push in repo (see …/push.log, (link on the worker's machine))" in body

    for internal in ("/home/ops", "/srv/other-host", "/var/log", "/mnt/shared", QUEUE, "127.0.0"):
        assert internal not in body, internal
    assert "Temporal UI" not in body  # on the worker's loopback: nobody else can open it


def test_a_ui_others_can_reach_is_linked() -> None:
    ui = "https://temporal.example.com/namespaces/default/workflows/add-faces-3f2a"
    assert pull_request_body(report(), ui).endswith(f" · [Temporal UI]({ui})\n")
    assert [reachable(u) for u in (ui, "http://localhost:8233", "http://[::1]:8233")] == [
        True,
        False,
        False,
    ]


def test_every_spelling_of_this_machine_is_a_local_link() -> None:
    local = [
        "http://127.1:8233",
        "http://0:8233",
        "http://[::ffff:127.0.0.1]:8233",
        "http://[::1]:8233/namespaces/x",
        "http://2130706433/",
        "http://169.254.1.1/",
        "http://[bad",
        "file:///srv/coord/log.txt",
    ]
    assert [reachable(u) for u in local] == [False] * len(local)
    assert reachable("http://10.0.0.7:8233") and reachable("https://ci.example/run/1")
    findings = "See " + ", ".join(local[:4]) + " and https://ci.example/run/1."
    body = pull_request_body(report().model_copy(update={"review": findings}))
    for link in local[:4]:
        assert link not in body, link
    assert "https://ci.example/run/1" in body


def test_ipv4_shorthands_read_as_the_c_library_reads_them() -> None:
    """The core parses 127.1, 0x7f.1, 2130706433 itself (no socket module): as inet_aton."""
    spellings = ["127.1", "0", "00", "2130706433", "0x7f.1", "0177.0.0.1", "1.2.65535"]
    spellings += ["1.0xffffff", "0X7F000001", "256.1", "1.2.3.4.5", "0x", "08", "1..2", "a.b"]
    spellings += ["1.2.65536", "4294967296", "127.0.0.1."]
    for host in spellings:
        try:
            expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            expected = None
        assert _ipv4_shorthand(host) == expected, host
