"""The house's floors, read from the source: faces (`worker.py`, `cli/`, `benchmarks/`) ->
`workflows/` -> `activities/` -> `coordinator/`. Imports point down only, the core does no I/O,
and no two modules import each other, however far round.

The check reads every module with `ast` (nothing is imported), so it runs in a blink and sees
imports inside functions too. It is tested against small synthetic trees with a planted
violation of each kind, so a check that cannot fail would show here."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lower number, lower floor. A module may import its own floor or any floor below.
FLOORS: dict[str, int] = {
    "coordinator": 0,
    "activities": 1,
    "workflows": 2,
    "worker": 3,
    "cli": 3,
    "benchmarks": 3,
}
CORE = "coordinator"

# What the core may not import: processes, sockets, files by shell tools, Temporal's runtime.
CORE_BANNED_MODULES = (
    "subprocess",
    "socket",
    "shutil",
    "asyncio.subprocess",
    "multiprocessing",
    "temporalio.activity",
    "temporalio.client",
    "temporalio.worker",
    "temporalio.testing",
)
# Calls the core may not make, whatever it imported (`os.system(...)`, `asyncio.create_...`).
CORE_BANNED_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("os", "fork"),
    ("os", "execv"),
    ("os", "execvp"),
    ("os", "spawnv"),
    ("os", "kill"),
    ("asyncio", "create_subprocess_exec"),
    ("asyncio", "create_subprocess_shell"),
    ("asyncio", "open_connection"),
    ("asyncio", "start_server"),
}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # dotted module name as written (resolved when relative)
    names: tuple[str, ...]  # for `from target import a, b`; empty for `import target`
    line: int


def module_files(root: Path) -> dict[str, Path]:
    """Every module of the project under `root`, by dotted name."""
    found: dict[str, Path] = {}
    for top in FLOORS:
        single = root / f"{top}.py"
        if single.is_file():
            found[top] = single
        package = root / top
        if not package.is_dir():
            continue
        for path in sorted(package.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, target] if target else base)
            yield Import(name, target, tuple(a.name for a in node.names), node.lineno)


def project_targets(imp: Import, modules: dict[str, Path]) -> list[str]:
    """The project modules an import names: `from pkg import mod` names `pkg.mod` when that is
    a module, else `pkg` itself."""
    if imp.target.split(".")[0] not in FLOORS:
        return []
    if not imp.names:
        return [imp.target] if imp.target in modules else []
    targets = []
    for item in imp.names:
        sub = f"{imp.target}.{item}"
        targets.append(sub if sub in modules else imp.target)
    return [t for t in dict.fromkeys(targets) if t in modules]


def floor_of(module: str) -> int:
    return FLOORS[module.split(".")[0]]


def where(modules: dict[str, Path], root: Path, imp: Import) -> str:
    return f"{modules[imp.importer].relative_to(root)}:{imp.line}"


def upward_imports(root: Path) -> list[str]:
    modules = module_files(root)
    problems = []
    for name, path in modules.items():
        for imp in imports_of(name, path):
            for target in project_targets(imp, modules):
                if floor_of(target) > floor_of(name):
                    problems.append(
                        f"{where(modules, root, imp)}: {name} (floor {floor_of(name)}) imports "
                        f"{target} (floor {floor_of(target)}), which is above it"
                    )
    return problems


def core_io(root: Path) -> list[str]:
    modules = module_files(root)
    problems = []
    for name, path in modules.items():
        if name.split(".")[0] != CORE:
            continue
        for imp in imports_of(name, path):
            written = [imp.target] + [f"{imp.target}.{item}" for item in imp.names]
            for banned in CORE_BANNED_MODULES:
                if any(w == banned or w.startswith(banned + ".") for w in written):
                    problems.append(f"{where(modules, root, imp)}: {name} imports {banned}")
                    break
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in CORE_BANNED_CALLS
            ):
                problems.append(
                    f"{path.relative_to(root)}:{node.lineno}: {name} uses "
                    f"{node.value.id}.{node.attr}"
                )
    return problems


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = module_files(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imp in imports_of(name, path):
            graph[name].update(t for t in project_targets(imp, modules) if t != name)
    return graph


def cycles(root: Path) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    graph = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


# ---- the project itself ----


def test_the_project_has_modules_on_every_floor() -> None:
    floors = {name.split(".")[0] for name in module_files(ROOT)}
    assert floors == set(FLOORS)


def test_no_import_points_up_a_floor() -> None:
    assert upward_imports(ROOT) == []


def test_the_core_does_no_io() -> None:
    assert core_io(ROOT) == []


def test_no_import_cycles() -> None:
    assert cycles(ROOT) == []


# ---- the check, against planted violations ----


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    for package in FLOORS:
        if (root / package).is_dir():
            (root / package / "__init__.py").touch()
    return root


CLEAN = {
    "coordinator/plan.py": "import re\nfrom pathlib import PurePosixPath\n",
    "coordinator/rules.py": "from coordinator.plan import PurePosixPath\nfrom . import plan\n",
    "activities/git.py": "import subprocess\nfrom coordinator import plan\n",
    "workflows/phase.py": "from activities.git import git\nfrom coordinator.rules import x\n",
    "cli/main.py": "from workflows import phase\nimport worker\n",
    "worker.py": "from workflows.phase import plan\nfrom cli import main\n",
}


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    files = dict(CLEAN)
    files["worker.py"] = "from workflows.phase import plan\n"  # no worker <-> cli cycle
    root = _tree(tmp_path, files)
    assert upward_imports(root) == []
    assert core_io(root) == []
    assert cycles(root) == []


@pytest.mark.parametrize(
    ("path", "text", "culprit"),
    [
        ("coordinator/plan.py", "from activities import git\n", "activities.git"),
        ("coordinator/plan.py", "def f():\n    from workflows.phase import x\n", "workflows.phase"),
        ("activities/git.py", "import workflows.phase\n", "workflows.phase"),
        ("workflows/phase.py", "from cli.main import run\n", "cli.main"),
        ("activities/git.py", "from worker import main\n", "worker"),
        ("coordinator/deep/inner.py", "from ...activities import git\n", "activities.git"),
    ],
)
def test_an_upward_import_is_caught(tmp_path: Path, path: str, text: str, culprit: str) -> None:
    root = _tree(tmp_path, {**CLEAN, "worker.py": "", path: text})
    problems = upward_imports(root)
    assert len(problems) == 1, problems
    assert culprit in problems[0] and path in problems[0]


@pytest.mark.parametrize(
    "text",
    [
        "import subprocess\n",
        "import socket\n",
        "from shutil import which\n",
        "from asyncio import subprocess\n",
        "from temporalio import activity\n",
        "from temporalio.client import Client\n",
        "import temporalio.worker\n",
        "import os\nos.system('ls')\n",
        "import asyncio\nasync def f():\n    await asyncio.create_subprocess_exec('ls')\n",
    ],
)
def test_io_in_the_core_is_caught(tmp_path: Path, text: str) -> None:
    root = _tree(tmp_path, {**CLEAN, "worker.py": "", "coordinator/rules.py": text})
    problems = core_io(root)
    assert len(problems) == 1, problems
    assert "coordinator/rules.py" in problems[0]


def test_io_is_fine_above_the_core(tmp_path: Path) -> None:
    text = "import subprocess, socket, shutil\nfrom temporalio import activity\n"
    root = _tree(tmp_path, {**CLEAN, "worker.py": "", "activities/git.py": text})
    assert core_io(root) == []


def test_a_cycle_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            **CLEAN,
            "worker.py": "",
            "coordinator/a.py": "from coordinator import b\n",
            "coordinator/b.py": "from coordinator.c import x\n",
            "coordinator/c.py": "def f():\n    import coordinator.a\n",
        },
    )
    assert cycles(root) == [["coordinator.a", "coordinator.b", "coordinator.c"]]


def test_a_cycle_between_faces_is_caught(tmp_path: Path) -> None:
    assert cycles(_tree(tmp_path, CLEAN)) == [["cli.main", "worker"]]
