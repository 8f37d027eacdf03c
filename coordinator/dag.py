"""Pure, deterministic scheduling over the task graph.

Workflow code uses this, so: stdlib only, no I/O, no clocks, no randomness, and no result that
depends on set iteration order (string hashing is salted per process, and a replayed workflow
must make the same decisions). Everything is ordered by plan order.

Edges point from a task to the tasks it depends on. All algorithms are iterative, so a
1,000-task chain does not hit the recursion limit.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

# Enough to show what is wrong in a badly tangled plan without drowning the user.
MAX_CYCLES_PER_COMPONENT = 20


class DependencySpec(Protocol):
    """What dependency resolution needs from a task (`coordinator.plan.Task` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def layer(self) -> str | None: ...

    @property
    def depends_on(self) -> Sequence[str] | None: ...


@dataclass(frozen=True)
class TaskSpec:
    """A minimal `DependencySpec`, e.g. for raw task data that did not parse as a `Task`."""

    id: str
    layer: str | None = None
    depends_on: Sequence[str] | None = None


def layer_order(tasks: Iterable[DependencySpec]) -> dict[str, list[str]]:
    """Layer name -> its task ids, layers in order of first appearance, tasks in plan order."""
    layers: dict[str, list[str]] = {}
    for task in tasks:
        if task.layer is not None:
            members = layers.setdefault(task.layer, [])
            if task.id not in members:
                members.append(task.id)
    return layers


def resolve_dependencies(tasks: Iterable[DependencySpec]) -> dict[str, tuple[str, ...]]:
    """Task id -> the ids it depends on, in plan order.

    An explicit `depends_on` (even empty) is taken as written. Without one, a task in a layer
    depends on every task of the previous layer (layers ordered by first appearance); a task
    without a layer has no dependencies. Repeated dependencies collapse to one. With duplicate
    task ids the first task wins (validation reports the duplicate).
    """
    tasks = list(tasks)
    layers = layer_order(tasks)
    names = list(layers)
    previous = {names[i]: layers[names[i - 1]] for i in range(1, len(names))}
    deps: dict[str, tuple[str, ...]] = {}
    for task in tasks:
        if task.id in deps:
            continue
        if task.depends_on is not None:
            deps[task.id] = tuple(dict.fromkeys(task.depends_on))
        elif task.layer is not None and task.layer in previous:
            deps[task.id] = tuple(previous[task.layer])
        else:
            deps[task.id] = ()
    return deps


def find_cycles(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Dependency cycles, each as ``[a, b, c, a]`` (a depends on b, b on c, c on a).

    Self-dependencies come back as ``[a, a]``. Dependencies on ids missing from `deps` are
    ignored. Each cycle is reported once, starting at its earliest task in plan order (the
    order of `deps`), and every task on a cycle appears in one of them, up to
    `MAX_CYCLES_PER_COMPONENT` cycles per tangle (strongly connected component).
    """
    order = list(deps)
    index = {task: i for i, task in enumerate(order)}
    edges = [[index[d] for d in dict.fromkeys(deps[task]) if d in index] for task in order]
    cycles: list[list[str]] = []
    for component in _strongly_connected(edges):
        if len(component) == 1:
            node = component[0]
            if node in edges[node]:
                cycles.append([order[node], order[node]])
            continue
        cycles.extend([order[i] for i in cycle] for cycle in _component_cycles(component, edges))
    return cycles


def _strongly_connected(edges: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative. Components come out sorted, ordered by first node."""
    n = len(edges)
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, edge_pos = work.pop()
            if edge_pos == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            recurse = False
            targets = edges[node]
            while edge_pos < len(targets):
                target = targets[edge_pos]
                edge_pos += 1
                if index[target] == -1:
                    work.append((node, edge_pos))
                    work.append((target, 0))
                    recurse = True
                    break
                if on_stack[target]:
                    low[node] = min(low[node], index[target])
            if recurse:
                continue
            if low[node] == index[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    components.sort(key=lambda c: c[0])
    return components


def _component_cycles(component: list[int], edges: list[list[int]]) -> list[list[int]]:
    """Shortest cycles through the members of one strongly connected component.

    A breadth-first search from each member not yet on a reported cycle: every member ends up
    on some cycle, and the number of searches stays small for long rings.
    """
    members = set(component)
    covered: set[int] = set()
    found: list[list[int]] = []
    seen_cycles: set[tuple[int, ...]] = set()
    for start in component:
        if start in covered:
            continue
        if len(found) >= MAX_CYCLES_PER_COMPONENT:
            break
        parent: dict[int, int] = {start: start}
        queue = deque([start])
        last = -1
        while queue and last == -1:
            node = queue.popleft()
            for target in edges[node]:
                if target == start:
                    last = node
                    break
                if target in members and target not in parent:
                    parent[target] = node
                    queue.append(target)
        if last == -1:  # cannot happen in a strongly connected component of size > 1
            continue
        path = [last]
        while path[-1] != start:
            path.append(parent[path[-1]])
        path.reverse()  # start ... last, and last depends on start
        pivot = path.index(min(path))
        cycle = path[pivot:] + path[:pivot]
        covered.update(cycle)
        if tuple(cycle) not in seen_cycles:
            seen_cycles.add(tuple(cycle))
            found.append([*cycle, cycle[0]])
    return found


class CycleError(ValueError):
    def __init__(self, cycles: list[list[str]]) -> None:
        self.cycles = cycles
        shown = "; ".join(" -> ".join(cycle) for cycle in cycles)
        super().__init__(f"dependency cycle: {shown}")


class TaskGraph:
    """An acyclic task graph in plan order. Raises `ValueError` for unknown ids or cycles."""

    def __init__(
        self, deps: Mapping[str, Sequence[str]], order: Sequence[str] | None = None
    ) -> None:
        plan_order = list(deps) if order is None else list(order)
        if len(set(plan_order)) != len(plan_order) or set(plan_order) != set(deps):
            raise ValueError("order must list every task of deps exactly once")
        self._order = tuple(plan_order)
        self._index = {task: i for i, task in enumerate(self._order)}
        self._deps: dict[str, tuple[str, ...]] = {}
        for task in self._order:
            for dep in deps[task]:
                if dep not in self._index:
                    raise ValueError(f"task {task!r} depends on unknown task {dep!r}")
            self._deps[task] = tuple(dict.fromkeys(deps[task]))
        children: dict[str, list[str]] = {task: [] for task in self._order}
        for task in self._order:
            for dep in self._deps[task]:
                children[dep].append(task)
        self._children = {task: tuple(kids) for task, kids in children.items()}
        self._topo = self._topological_order()
        self._ancestor_bits: list[int] | None = None

    @classmethod
    def from_tasks(cls, tasks: Iterable[DependencySpec]) -> TaskGraph:
        return cls(resolve_dependencies(tasks))

    @property
    def order(self) -> tuple[str, ...]:
        return self._order

    def dependencies(self, task_id: str) -> tuple[str, ...]:
        return self._deps[task_id]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._index

    def _topological_order(self) -> list[str]:
        """Kahn's algorithm; among ready tasks the earliest in plan order goes first."""
        remaining = {task: len(self._deps[task]) for task in self._order}
        heap = [self._index[task] for task in self._order if remaining[task] == 0]
        heapq.heapify(heap)
        result: list[str] = []
        while heap:
            task = self._order[heapq.heappop(heap)]
            result.append(task)
            for child in self._children[task]:
                remaining[child] -= 1
                if remaining[child] == 0:
                    heapq.heappush(heap, self._index[child])
        if len(result) != len(self._order):
            raise CycleError(find_cycles(self._deps))
        return result

    def ready(self, done: AbstractSet[str], started: AbstractSet[str]) -> list[str]:
        """Tasks that can start now: not started or done, every dependency done. Plan order."""
        return [
            task
            for task in self._order
            if task not in started
            and task not in done
            and all(dep in done for dep in self._deps[task])
        ]

    def _levels(self) -> dict[str, int]:
        """1 + the length of the longest dependency chain below each task."""
        level: dict[str, int] = {}
        for task in self._topo:
            level[task] = 1 + max((level[dep] for dep in self._deps[task]), default=0)
        return level

    def waves(self) -> list[list[str]]:
        """Topological levels: wave k holds the tasks whose longest dependency chain is k-1."""
        level = self._levels()
        waves: list[list[str]] = [[] for _ in range(max(level.values(), default=0))]
        for task in self._order:
            waves[level[task] - 1].append(task)
        return waves

    def schedule(self, max_parallel: int) -> list[list[str]]:
        """Simulate unit-time steps: each step starts up to `max_parallel` ready tasks (plan
        order first), and they finish before the next step."""
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        remaining = {task: len(self._deps[task]) for task in self._order}
        heap = [self._index[task] for task in self._order if remaining[task] == 0]
        heapq.heapify(heap)
        steps: list[list[str]] = []
        while heap:
            step = [self._order[heapq.heappop(heap)] for _ in range(min(max_parallel, len(heap)))]
            steps.append(step)
            for task in step:
                for child in self._children[task]:
                    remaining[child] -= 1
                    if remaining[child] == 0:
                        heapq.heappush(heap, self._index[child])
        return steps

    def critical_path(self) -> list[str]:
        """The longest dependency chain, first task first. Ties go to the earliest in plan order."""
        level: dict[str, int] = {}
        via: dict[str, str | None] = {}
        for task in self._topo:
            best: str | None = None
            for dep in self._deps[task]:
                if (
                    best is None
                    or level[dep] > level[best]
                    or (level[dep] == level[best] and self._index[dep] < self._index[best])
                ):
                    best = dep
            level[task] = 1 if best is None else level[best] + 1
            via[task] = best
        if not level:
            return []
        end = max(self._order, key=lambda task: (level[task], -self._index[task]))
        path: list[str] = []
        node: str | None = end
        while node is not None:
            path.append(node)
            node = via[node]
        path.reverse()
        return path

    def dependants(self, task_id: str) -> set[str]:
        """Everything that (transitively) waits on `task_id`: what its failure blocks."""
        return self._reach(task_id, self._children)

    def ancestors(self, task_id: str) -> set[str]:
        """Everything `task_id` (transitively) waits on."""
        return self._reach(task_id, self._deps)

    def _reach(self, task_id: str, edges: Mapping[str, tuple[str, ...]]) -> set[str]:
        if task_id not in self._index:
            raise KeyError(task_id)
        seen: set[str] = set()
        stack = [task_id]
        while stack:
            for other in edges[stack.pop()]:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        return seen

    def may_run_in_parallel(self, a: str, b: str) -> bool:
        """True when neither task is an ancestor of the other (so nothing orders them)."""
        if a not in self._index or b not in self._index:
            raise KeyError(a if a not in self._index else b)
        if a == b:
            return False
        bits = self._ancestors_as_bits()
        ia, ib = self._index[a], self._index[b]
        return not (bits[ia] >> ib) & 1 and not (bits[ib] >> ia) & 1

    def _ancestors_as_bits(self) -> list[int]:
        # One int bitset per task: O(edges * tasks / 64) once, then O(1) per pair query.
        if self._ancestor_bits is None:
            bits = [0] * len(self._order)
            for task in self._topo:
                acc = 0
                for dep in self._deps[task]:
                    i = self._index[dep]
                    acc |= bits[i] | (1 << i)
                bits[self._index[task]] = acc
            self._ancestor_bits = bits
        return self._ancestor_bits
