"""The order a plan's layout implies, as dependency edges.

A plan is a tree of sequences: spec-kit phases run one after the other, and inside a phase
the tasks run in file order except those marked `[P]` ("different files, no dependencies");
Kiro's numbered tasks run in order, their sub-tasks too, except those marked `(P)`. In a
`Seq`, a child not marked parallel waits for everything before it; a parallel child waits
only for what the sequence itself waits for. Finished tasks are not in the tree's open set:
a phase whose tasks are all done is passed through (the next one waits for the one before).

`same_file_edges` adds the rule the formats imply on top of any graph: two tasks that name
the same file never run at once (the later one in the file waits for the earlier one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# (task, the task it waits for, why)
EdgeTuple = tuple[str, str, str]


@dataclass
class Seq:
    """Children (task ids or nested sequences) in file order; `parallel[i]`: child i may run
    alongside its siblings. `why` names the order for `coord validate`."""

    why: str
    children: list[Seq | str] = field(default_factory=list)
    parallel: list[bool] = field(default_factory=list)

    def add(self, child: Seq | str, parallel: bool = False) -> None:
        self.children.append(child)
        self.parallel.append(parallel)


def order_edges(root: Seq, open_ids: set[str]) -> list[EdgeTuple]:
    """Every edge the tree's order implies between open tasks."""
    edges: list[EdgeTuple] = []
    _visit(root, [], root.why, edges, open_ids)
    return edges


def _visit(
    node: Seq | str, entry: list[str], why: str, edges: list[EdgeTuple], open_ids: set[str]
) -> list[str] | None:
    """Add `node`'s edges given what it waits for; what waiting for it means (None: it
    holds nothing open)."""
    if isinstance(node, str):
        if node not in open_ids:
            return None
        edges.extend((node, dep, why) for dep in entry)
        return [node]
    frontier: list[str] = list(entry)
    started = False
    for child, parallel in zip(node.children, node.parallel, strict=True):
        if parallel:
            exits = _visit(child, entry, why, edges, open_ids)
        else:
            exits = _visit(child, frontier, node.why if started else why, edges, open_ids)
        if exits is None:
            continue
        # A later child that is not parallel waits for this one (and, after a parallel one,
        # for the ones since the last that was not).
        frontier = frontier + exits if parallel and started else exits
        started = True
    return frontier if started else None


class Graph:
    """Dependencies by task, in insertion order, with reachability."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.deps: dict[str, list[str]] = {task: [] for task in ids}

    def add(self, task: str, dep: str) -> bool:
        if task == dep or task not in self.deps or dep in self.deps[task]:
            return False
        self.deps[task].append(dep)
        return True

    def reaches(self, start: str, goal: str) -> bool:
        """`start` waits for `goal`, directly or through others."""
        seen = {start}
        stack = [start]
        while stack:
            for dep in self.deps.get(stack.pop(), ()):
                if dep == goal:
                    return True
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        return False


def same_file_edges(
    graph: Graph, files: Mapping[str, Iterable[str]], order: list[str]
) -> list[EdgeTuple]:
    """For tasks (in file `order`) naming the same file and not yet ordered either way:
    the later waits for the earlier. Adds the edges to `graph` and returns them."""
    owners: dict[str, list[str]] = {}
    for task in order:
        for name in dict.fromkeys(_normal(f) for f in files.get(task, ())):
            owners.setdefault(name, []).append(task)
    added: list[EdgeTuple] = []
    for name, tasks in owners.items():
        for k, later in enumerate(tasks):
            for earlier in reversed(tasks[:k]):  # the nearest first: fewer edges
                if graph.reaches(later, earlier) or graph.reaches(earlier, later):
                    continue
                graph.add(later, earlier)
                added.append((later, earlier, f"same file {name}"))
    return added


def _normal(name: str) -> str:
    parts: list[str] = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts:
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


__all__ = ["EdgeTuple", "Graph", "Seq", "order_edges", "same_file_edges"]
