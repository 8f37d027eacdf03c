"""coordinator.dag: dependency resolution, cycles and scheduling."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.dag import (
    CycleError,
    TaskGraph,
    TaskSpec,
    find_cycles,
    layer_order,
    resolve_dependencies,
)
from coordinator.plan import Task

# --- resolve_dependencies ----------------------------------------------------------------------


def test_layer_rule_depends_on_every_task_of_the_previous_layer() -> None:
    tasks = [
        TaskSpec("db", layer="base"),
        TaskSpec("api", layer="service"),
        TaskSpec("cache", layer="base"),  # layers group by name, not by position
        TaskSpec("ui", layer="front"),
        TaskSpec("docs"),
    ]
    assert resolve_dependencies(tasks) == {
        "db": (),
        "api": ("db", "cache"),
        "cache": (),
        "ui": ("api",),
        "docs": (),
    }
    assert layer_order(tasks) == {"base": ["db", "cache"], "service": ["api"], "front": ["ui"]}


def test_explicit_depends_on_wins_over_the_layer_even_when_empty() -> None:
    tasks = [
        TaskSpec("a", layer="one"),
        TaskSpec("b", layer="one"),
        TaskSpec("c", layer="two", depends_on=[]),
        TaskSpec("d", layer="two", depends_on=["b", "b"]),
        TaskSpec("e", layer="two"),
    ]
    deps = resolve_dependencies(tasks)
    assert deps["c"] == ()
    assert deps["d"] == ("b",)  # repeated entries collapse
    assert deps["e"] == ("a", "b")


def test_resolve_accepts_plan_tasks_and_keeps_the_first_of_duplicate_ids() -> None:
    tasks = [
        Task(id="a", title="A"),
        Task(id="b", title="B", depends_on=["a"]),
        Task(id="a", title="again", depends_on=["b"]),
    ]
    assert resolve_dependencies(tasks) == {"a": (), "b": ("a",)}


# --- find_cycles -------------------------------------------------------------------------------


def test_find_cycles_names_the_cycle_from_its_earliest_task() -> None:
    deps = {"x": (), "b": ("c",), "a": ("b",), "c": ("a",)}
    # Plan order is x, b, a, c: the cycle starts at b, the earliest task on it.
    assert find_cycles(deps) == [["b", "c", "a", "b"]]


def test_find_cycles_reports_each_distinct_cycle_once() -> None:
    deps = {"a": ("b", "c"), "b": ("a",), "c": ("a",), "d": ("e",), "e": ("d",), "f": ("f",)}
    assert find_cycles(deps) == [["a", "b", "a"], ["a", "c", "a"], ["d", "e", "d"], ["f", "f"]]


def test_find_cycles_ignores_unknown_ids_and_acyclic_graphs() -> None:
    assert find_cycles({"a": ("zzz",), "b": ("a",)}) == []
    assert find_cycles({}) == []


def test_find_cycles_on_a_long_ring_is_iterative() -> None:
    n = 5000
    deps = {f"t{i}": (f"t{(i + 1) % n}",) for i in range(n)}
    (cycle,) = find_cycles(deps)
    assert len(cycle) == n + 1
    assert cycle[0] == cycle[-1] == "t0"
    assert cycle[1] == "t1"


# --- TaskGraph ---------------------------------------------------------------------------------


def diamond() -> TaskGraph:
    #   a
    #  / \
    # b   c
    #  \ /
    #   d    e (independent)
    return TaskGraph({"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()})


def test_graph_rejects_cycles_and_unknown_ids() -> None:
    with pytest.raises(CycleError, match=r"dependency cycle: a -> b -> a"):
        TaskGraph({"a": ("b",), "b": ("a",)})
    with pytest.raises(ValueError, match="task 'a' depends on unknown task 'zzz'"):
        TaskGraph({"a": ("zzz",)})
    with pytest.raises(ValueError, match="exactly once"):
        TaskGraph({"a": ()}, order=["a", "a"])


def test_ready_follows_done_and_started() -> None:
    graph = diamond()
    assert graph.ready(set(), set()) == ["a", "e"]
    assert graph.ready(set(), {"a"}) == ["e"]
    assert graph.ready({"a"}, {"a"}) == ["b", "c", "e"]
    assert graph.ready({"a", "b"}, {"a", "b", "e"}) == ["c"]
    assert graph.ready({"a", "b", "c", "e"}, {"a", "b", "c", "e"}) == ["d"]


def test_waves_schedule_and_critical_path() -> None:
    graph = diamond()
    assert graph.waves() == [["a", "e"], ["b", "c"], ["d"]]
    assert graph.schedule(4) == [["a", "e"], ["b", "c"], ["d"]]
    assert graph.schedule(1) == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert graph.schedule(2) == [["a", "e"], ["b", "c"], ["d"]]
    assert graph.critical_path() == ["a", "b", "d"]
    with pytest.raises(ValueError):
        graph.schedule(0)


def test_plan_order_is_the_priority() -> None:
    graph = TaskGraph({"z": (), "y": (), "x": ("z",)})
    assert graph.schedule(1) == [["z"], ["y"], ["x"]]
    assert graph.waves() == [["z", "y"], ["x"]]


def test_relations() -> None:
    graph = diamond()
    assert graph.dependants("a") == {"b", "c", "d"}
    assert graph.dependants("d") == set()
    assert graph.ancestors("d") == {"a", "b", "c"}
    assert graph.may_run_in_parallel("b", "c")
    assert graph.may_run_in_parallel("e", "d")
    assert not graph.may_run_in_parallel("a", "d")
    assert not graph.may_run_in_parallel("d", "a")
    assert not graph.may_run_in_parallel("b", "b")
    with pytest.raises(KeyError):
        graph.dependants("nope")
    with pytest.raises(KeyError):
        graph.may_run_in_parallel("a", "nope")


def test_empty_graph() -> None:
    graph = TaskGraph({})
    assert graph.waves() == []
    assert graph.schedule(3) == []
    assert graph.critical_path() == []
    assert graph.ready(set(), set()) == []


def test_thousand_task_chain_and_wide_graph_are_fast() -> None:
    start = time.perf_counter()
    chain = TaskGraph({f"t{i}": ((f"t{i - 1}",) if i else ()) for i in range(1000)})
    assert len(chain.critical_path()) == 1000
    assert len(chain.waves()) == 1000
    assert chain.dependants("t0") == {f"t{i}" for i in range(1, 1000)}
    assert not chain.may_run_in_parallel("t0", "t999")
    # Dense: every task depends on the ten before it.
    dense = TaskGraph(
        {f"t{i}": tuple(f"t{j}" for j in range(max(0, i - 10), i)) for i in range(1000)}
    )
    assert len(dense.schedule(4)) == 1000
    pairs = sum(
        dense.may_run_in_parallel(f"t{i}", f"t{j}") for i in range(0, 1000, 7) for j in range(1000)
    )
    assert pairs == 0
    assert time.perf_counter() - start < 5


# --- properties on random DAGs -----------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """A random DAG (edges only to lower numbers) listed in a random plan order."""
    n = draw(st.integers(min_value=1, max_value=25))
    deps: dict[str, tuple[str, ...]] = {}
    for i in range(n):
        chosen = draw(st.sets(st.integers(min_value=0, max_value=max(0, i - 1)), max_size=4))
        deps[f"t{i}"] = tuple(f"t{j}" for j in sorted(chosen) if j < i)
    order = draw(st.permutations(list(deps)))
    return {task: deps[task] for task in order}, list(order)


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@PROPERTY_SETTINGS
@given(dags(), st.integers(min_value=1, max_value=5))
def test_schedule_runs_each_task_once_after_its_deps(
    dag: tuple[dict[str, tuple[str, ...]], list[str]], max_parallel: int
) -> None:
    deps, order = dag
    graph = TaskGraph(deps, order)
    steps = graph.schedule(max_parallel)
    flat = [task for step in steps for task in step]
    assert sorted(flat) == sorted(deps)
    step_of = {task: i for i, step in enumerate(steps) for task in step}
    for task, task_deps in deps.items():
        assert all(step_of[dep] < step_of[task] for dep in task_deps)
    assert all(1 <= len(step) <= max_parallel for step in steps)
    assert len(steps) >= len(graph.waves())


@PROPERTY_SETTINGS
@given(dags(), st.data())
def test_ready_never_offers_a_task_whose_deps_are_not_done(
    dag: tuple[dict[str, tuple[str, ...]], list[str]], data: st.DataObject
) -> None:
    deps, order = dag
    graph = TaskGraph(deps, order)
    done: set[str] = set()
    started: set[str] = set()
    while len(done) < len(deps):
        ready = graph.ready(done, started)
        for task in ready:
            assert task not in started and task not in done
            assert all(dep in done for dep in deps[task])
        running = sorted(started - done)
        assert ready or running  # never stuck
        # Start some ready tasks, finish some running ones, in a random interleaving.
        if ready and (not running or data.draw(st.booleans())):
            started.add(data.draw(st.sampled_from(ready)))
        else:
            done.add(data.draw(st.sampled_from(running)))


@PROPERTY_SETTINGS
@given(dags())
def test_critical_path_is_a_chain_as_long_as_the_waves(
    dag: tuple[dict[str, tuple[str, ...]], list[str]],
) -> None:
    deps, order = dag
    graph = TaskGraph(deps, order)
    path = graph.critical_path()
    waves = graph.waves()
    assert len(path) == len(waves)
    assert all(earlier in deps[later] for earlier, later in itertools.pairwise(path))
    assert sorted(t for wave in waves for t in wave) == sorted(deps)
    for a in deps:
        for b in graph.dependants(a):
            assert a in graph.ancestors(b)
            assert not graph.may_run_in_parallel(a, b)


@PROPERTY_SETTINGS
@given(dags(), st.data())
def test_an_injected_back_edge_is_always_reported(
    dag: tuple[dict[str, tuple[str, ...]], list[str]], data: st.DataObject
) -> None:
    deps, order = dag
    graph = TaskGraph(deps, order)
    assert find_cycles(deps) == []
    # Make a task depend on one of its dependants (or on itself when it has none).
    task = data.draw(st.sampled_from(order))
    below = sorted(graph.dependants(task))
    target = data.draw(st.sampled_from(below)) if below else task
    cyclic = dict(deps)
    cyclic[task] = (*deps[task], target)
    cycles = find_cycles(cyclic)
    assert cycles
    for cycle in cycles:
        assert cycle[0] == cycle[-1]
        for a, b in itertools.pairwise(cycle):
            assert b in cyclic[a]
    # The graph was acyclic, so every cycle goes through the new edge.
    assert all(task in cycle and target in cycle for cycle in cycles)
    with pytest.raises(CycleError):
        TaskGraph(cyclic, order)
