"""What the Temporal Web UI shows of an execution: search attributes to filter on (status,
phase, percent done, waiting on a human since) and the details markdown: a question waiting
leads (with its choices and the commands that answer it), then a summary table.

`WebUi` remembers what it last upserted: each upsert is a history event, so it upserts only
when something the Web UI filters on changed. Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from coordinator.report import Progress
    from coordinator.waiting import is_waiting, waiting_markdown, waiting_since
    from workflows import search_attributes as sa

# Executions started before CoordWaitingSince existed never upsert it (their history has no
# such event to replay).
WAITING_SINCE_PATCH = "web-ui-waiting-since"
DETAILS_TASK_ROWS = 50  # the Web UI shows a summary table, not a thousand rows


class WebUi:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._visible: tuple[str, str, int] | None = None  # search attributes last upserted

    def show(self) -> None:
        p = self._progress
        visible = (p.status.value, p.phase, p.percent)
        if visible != self._visible:
            self._visible = visible
            workflow.upsert_search_attributes(
                [
                    sa.STATUS.value_set(p.status.value),
                    sa.PHASE.value_set(p.phase),
                    sa.PROGRESS.value_set(p.percent),
                ]
            )
        self._show_waiting()
        workflow.set_current_details(details_markdown(p))

    def _show_waiting(self) -> None:
        """CoordWaitingSince: when the oldest waiting question was asked; unset when none
        waits. Compared with what the execution carries (also after a continue-as-new)."""
        p = self._progress
        current = workflow.info().typed_search_attributes.get(sa.WAITING_SINCE)
        wanted = None
        if is_waiting(p):
            wanted = waiting_since(p) or current or workflow.now()
        if wanted != current and workflow.patched(WAITING_SINCE_PATCH):
            workflow.upsert_search_attributes(
                [sa.WAITING_SINCE.value_set(wanted) if wanted else sa.WAITING_SINCE.value_unset()]
            )


def details_markdown(p: Progress) -> str:
    lines = waiting_markdown(p)
    if lines:
        lines += ["## Progress", ""]
    lines += [
        f"**{p.plan_name}**: {p.status.value}, phase {p.phase}, {p.percent}% of tasks done",
        "",
    ]
    if p.tokens or p.budget_usd is not None:
        cost = f"${p.cost_usd:.2f}" if p.cost_usd is not None else "unpriced"
        budget = f" of a ${p.budget_usd:.2f} budget" if p.budget_usd is not None else ""
        lines += [f"**Spent**: {p.tokens} tokens, {cost}{budget}", ""]
    lines += ["| phase | status | summary |", "|---|---|---|"]
    lines += [f"| {ph.name} | {ph.status} | {ph.summary} |" for ph in p.phases]
    lines += [
        "",
        "| task | specialist | status | attempts | tokens | cost |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {t.id} | {t.specialist or '-'} | {t.status} | {t.attempts} | {t.tokens or '-'} "
        f"| {f'${t.cost_usd:.2f}' if t.cost_usd is not None else '-'} |"
        for t in p.tasks[:DETAILS_TASK_ROWS]
    ]
    if len(p.tasks) > DETAILS_TASK_ROWS:
        lines.append(f"| … {len(p.tasks) - DETAILS_TASK_ROWS} more | | | | | |")
    return "\n".join(lines)
