"""A valid plan in words: its layers, its dependencies and where each came from, the schedule
a run would follow, its critical path; and a result's problems, one per line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from coordinator.dag import TaskGraph, layer_order
from coordinator.loader import Edge
from coordinator.plan import Plan
from coordinator.readers import READER_TITLES
from coordinator.validation_models import EdgeSummary, LayerSummary, PlanSummary, ValidationResult

# Edges listed one by one (the rest are counted); the JSON output has them all.
LISTED_EDGES = 20
_ORDER_WHYS = ("phase order", "file order", "layer order", "stream order")


def summarize(plan: Plan, graph: TaskGraph, edges: Iterable[Edge] = ()) -> PlanSummary:
    layers = [LayerSummary(name=name, tasks=ids) for name, ids in layer_order(plan.tasks).items()]
    critical = graph.critical_path()
    return PlanSummary(
        task_count=len(plan.tasks),
        max_parallel=plan.max_parallel,
        layers=layers,
        waves=graph.schedule(plan.max_parallel),
        critical_path=critical,
        critical_path_length=len(critical),
        edges=_edges(plan, graph, edges),
    )


def _edges(plan: Plan, graph: TaskGraph, known: Iterable[Edge]) -> list[EdgeSummary]:
    """Every edge of the graph, saying where it came from: the reader knows for the ones it
    inferred; the others were written (`depends_on`) or come from the layer rule."""
    whys = {(edge.task, edge.depends_on): edge.why for edge in known}
    out = []
    for task in plan.tasks:
        written = task.depends_on or []
        for dep in graph.dependencies(task.id):
            why = whys.get((task.id, dep)) or ("depends_on" if dep in written else "layer order")
            out.append(EdgeSummary(task=task.id, depends_on=dep, why=why))
    return out


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_problems(result: ValidationResult) -> str:
    """One line per problem ("error: plan.yaml:12: tasks[3].id: ..."), then a count."""
    if not result.problems:
        return ""
    lines = [f"{p.severity}: {p}" for p in result.problems]
    lines.append(
        f"{_plural(len(result.errors), 'error')}, {_plural(len(result.warnings), 'warning')}"
    )
    return "\n".join(lines)


def _kind(why: str) -> str:
    for order in _ORDER_WHYS:
        if why.startswith(order):
            return why
    return "same file" if why.startswith("same file") else "written by the plan's author"


def format_edges(edges: list[EdgeSummary]) -> list[str]:
    """Counts by origin, then the edges that are not the plan's plain order."""
    if not edges:
        return ["dependencies: none (every task can start at once)"]
    counts = Counter(_kind(edge.why) for edge in edges)
    out = [
        f"dependencies ({len(edges)}): "
        + ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
    ]
    listed = [e for e in edges if _kind(e.why) in ("same file", "written by the plan's author")]
    for edge in listed[:LISTED_EDGES]:
        out.append(f"  {edge.task} after {edge.depends_on}: {edge.why}")
    if len(listed) > LISTED_EDGES:
        out.append(f"  ... and {len(listed) - LISTED_EDGES} more (--json lists every edge)")
    return out


def format_summary(result: ValidationResult) -> str:
    out = []
    if result.reader is not None:
        out.append(f"read as {READER_TITLES.get(result.reader, result.reader)}")
    if result.nothing_to_do and result.ok:
        name = f"plan '{result.plan.name}'" if result.plan is not None else "the plan"
        return "\n".join([*out, f"{name}: nothing left to do", *result.notes])
    summary = result.summary
    if summary is None or result.plan is None:
        return "the plan is not valid" if not result.ok else ""

    def label(task_id: str) -> str:
        route = result.routes.get(task_id)
        return f"{task_id} ({route})" if route else task_id

    out.append(
        f"plan '{result.plan.name}' is valid: {_plural(summary.task_count, 'task')}, "
        f"at most {summary.max_parallel} at a time"
    )
    out += result.notes
    plan = result.plan
    if plan.setup:
        where = "the workspace" + (" and every new worktree" if plan.setup_per_worktree else "")
        out.append(f"setup ({where}): {', '.join(c.name for c in plan.setup)}")
    if plan.context:
        out.append(f"context documents: {', '.join(plan.context)}")
    if summary.layers:
        out.append("layers:")
        out += [f"  {layer.name}: {', '.join(layer.tasks)}" for layer in summary.layers]
    if result.reader is not None:  # a plan read from another format: how it was understood
        out += format_edges(summary.edges)
    out.append(f"schedule ({_plural(len(summary.waves), 'wave')}; a wave's tasks run together):")
    width = len(str(len(summary.waves)))
    out += [
        f"  {i:>{width}}. {', '.join(label(t) for t in wave)}"
        for i, wave in enumerate(summary.waves, 1)
    ]
    out.append(
        f"critical path: {_plural(summary.critical_path_length, 'task')} "
        f"({' then '.join(summary.critical_path)})"
    )
    return "\n".join(out)


__all__ = ["format_edges", "format_problems", "format_summary", "summarize"]
