"""The pull request's body: the execution as a reviewer reads it (pure).

What was asked and what came of it: the tasks with their specialists, attempts, gates and
cost, the gates at every level, the review, the escalations with the answers humans gave,
the approvals, the branch and what still needs a human. Nothing about the worker that ran
it: no local paths (its workspace, its logs), no host queue, no link to a Temporal UI on
the worker's loopback. `coord report ID` keeps all of that for the operator.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from urllib.parse import urlsplit

from coordinator.escalation import Approval, Escalation
from coordinator.report import (
    ExecutionReport,
    GateSummary,
    Workspace,
    handoff_lines,
    task_row,
)

LOCAL_PATH = "(local path)"
LOCAL_LINK = "(link on the worker's machine)"
_LOOPBACK_HOSTS = ("localhost", "::1", "0.0.0.0")
# An absolute path (two parts at least) where a message names one: after a space, a quote,
# a bracket or `=`; never inside a URL or a relative path.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:-])(?:~)?/[\w.@+%-]+(?:/[\w.@+%-]*)+")
# A URL in free text: its host may be an IPv6 address in brackets.
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:\[[0-9a-f:.]*\]|[^\s/?#)>\]]*)[^\s)>\]]*", re.I)


def pull_request_body(report: ExecutionReport, ui_url: str | None = None) -> str:
    """Markdown for the pull request; `ui_url` is linked only when others can reach it."""
    clean = _Cleaner(report.workspace)
    lines = [
        f"## coord: {report.plan_name}",
        "",
        f"**{report.status}**: {_tally(report)}",
        "",
        *_tasks(report),
        *_gates(report.gates, report.gate_totals),
    ]
    if report.review:
        lines += ["", "### Review", "", clean.text(report.review)]
    if report.escalations:
        lines += ["", "### Escalations and answers", ""]
        lines += [_escalation(e, clean) for e in report.escalations]
    if report.approvals:
        lines += ["", "### Approvals", ""] + [_approval(a) for a in report.approvals]
    if report.workspace is not None:
        ws = report.workspace
        lines += [
            "",
            "### Branch",
            "",
            f"`{ws.branch}` from `{ws.base_branch}` at `{ws.base_commit[:12]}`, "
            f"head `{ws.head_commit[:12]}`",
        ]
    if report.handoff is not None:
        lines += ["", "### Handoff", "", *(clean.handoff(x) for x in handoff_lines(report.handoff))]
    if report.problems:
        lines += ["", "### Problems", ""] + [f"- {clean.message(p)}" for p in report.problems]
    lines += ["", "### Still for a human", ""]
    lines += [f"- {clean.message(item)}" for item in report.human_todo] or ["- nothing"]
    details = f"Every detail: `coord report {report.execution_id}`"
    if ui_url and reachable(ui_url):
        details += f" · [Temporal UI]({ui_url})"
    lines += ["", details]
    return "\n".join(lines) + "\n"


def reachable(url: str) -> bool:
    """Whether a link can mean something to someone on another machine: it names a host,
    and not this machine (localhost, a loopback, unspecified or link-local address, in any
    spelling: 127.1, 0, [::ffff:127.0.0.1])."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # a malformed [IPv6] host
        return False
    return bool(host) and host not in _LOOPBACK_HOSTS and not _local_address(host)


def _local_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        shorthand = _ipv4_shorthand(host)
        if shorthand is None:
            return False  # a name
        address = shorthand
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified or address.is_link_local


_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def _ipv4_shorthand(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 spellings a browser and the C library's inet_aton accept besides a.b.c.d:
    127.1, 0, 2130706433, 0x7f.1, 0177.0.0.1 (1-4 parts in decimal, octal or hex, the last
    filling the bytes left). None when `host` is not one of them."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(part) for part in parts):
        return None
    values = [
        int(part[2:], 16) if part[:2].lower() == "0x" else int(part, 8 if part[0] == "0" else 10)
        for part in parts
    ]
    *head, last = values
    if any(value > 255 for value in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for value in head:
        number = number * 256 + value
    return ipaddress.IPv4Address(number * 256 ** (4 - len(head)) + last)


def _local_links(text: str) -> str:
    return _URL.sub(lambda m: m.group(0) if reachable(m.group(0)) else LOCAL_LINK, text)


def _tally(report: ExecutionReport) -> str:
    done = sum(t.status == "passed" for t in report.tasks)
    skipped = sum(t.status == "skipped" for t in report.tasks)
    parts = [
        f"{done} of {len(report.tasks)} tasks done" + (f", {skipped} skipped" if skipped else "")
    ]
    attempts = sum(t.attempts for t in report.tasks)
    parts.append(f"{attempts} attempts")
    if report.tokens or report.cost_usd is not None:
        cost = f", ${report.cost_usd:.2f}" if report.cost_usd is not None else ""
        budget = f" of a ${report.budget_usd:.2f} budget" if report.budget_usd is not None else ""
        parts.append(f"{report.tokens} tokens{cost}{budget}")
    return "; ".join(parts)


def _tasks(report: ExecutionReport) -> list[str]:
    lines = [
        "### Tasks",
        "",
        "| task | title | specialist | status | attempts | gates | tokens | cost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [task_row(t) for t in report.tasks]
    spend = [s for s in report.spend if s.tokens or s.cost_usd]
    if spend:
        lines += [
            "",
            "Outside tasks: "
            + ", ".join(
                f"{s.scope} {s.tokens} tokens"
                + (f" ${s.cost_usd:.2f}" if s.cost_usd is not None else "")
                for s in spend
            ),
        ]
    return lines


def _gates(gates: list[GateSummary], totals: dict[str, tuple[int, int]]) -> list[str]:
    if not totals:
        return ["", "### Gates", "", "No gates ran."]
    passed = ", ".join(f"{level} {ok}/{total}" for level, (ok, total) in totals.items())
    lines = ["", "### Gates", "", f"Passed: {passed}."]
    if gates:
        lines += ["", "| level | scope | gate | result |", "|---|---|---|---|"]
        lines += [
            f"| {g.level} | {_cell(g.scope)} | {_cell(g.name)} | "
            f"{'passed' if g.passed else 'FAILED'} |"
            for g in gates
        ]
    return lines


def _escalation(e: Escalation, clean: _Cleaner) -> str:
    where = e.phase + (f", task {e.task_id}" if e.task_id else "")
    if e.answer is None:
        answer = e.state.replace("_", " ")
    else:
        answer = e.answer.action.value
        if e.answer.guidance:
            answer += f' with guidance "{_cell(e.answer.guidance)}"'
        if e.answer.by:
            answer += f" by {e.answer.by}"
    return f"- `{e.id}` ({where}): {clean.message(e.reason)} → {answer}"


def _approval(a: Approval) -> str:
    line = f"- {a.name}: {a.state}"
    if a.answer is not None and a.answer.by:
        line += f" by {a.answer.by}"
    if a.answer is not None and a.answer.reason:
        line += f" ({_cell(a.answer.reason)})"
    return line


def _cell(text: str) -> str:
    """One line without pipes, for a table cell or an inline quote."""
    return " ".join(text.split()).replace("|", "\\|")


class _Cleaner:
    """Takes the worker's own places out of texts: its folders for this execution, its host
    queue, loopback links; and, in the coordinator's own messages, any absolute path."""

    def __init__(self, ws: Workspace | None) -> None:
        self.places: list[str] = []
        self.queue = ws.host_queue if ws is not None else None
        if ws is not None:
            dirs = [posixpath.dirname(ws.path.rstrip("/")), *ws.former_dirs, ws.path]
            self.places = sorted({d.rstrip("/") for d in dirs if len(d) > 1}, key=len)[::-1]

    def known(self, text: str) -> str:
        """This execution's folders (paths inside them become relative) and host queue."""
        for place in self.places:
            text = text.replace(place + "/", "").replace(place, LOCAL_PATH)
        return text.replace(self.queue, "(worker queue)") if self.queue else text

    def text(self, text: str) -> str:
        """Free text (a reviewer's findings): known places and loopback links only."""
        return _local_links(self.known(text))

    def message(self, text: str) -> str:
        """The coordinator's messages: also every absolute path, down to its last part."""
        return _no_paths(self.text(text))

    def handoff(self, text: str) -> str:
        """Lines about GitHub: its links stay (a local GitHub in tests is on loopback)."""
        return _no_paths(self.known(text))


def _no_paths(text: str) -> str:
    return _ABSOLUTE_PATH.sub(lambda m: "…/" + posixpath.basename(m.group().rstrip("/")), text)
