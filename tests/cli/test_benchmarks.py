"""The benchmark harness still runs end to end: its own dev server, a real worker process,
`coord run`, the bare Temporal DAG and the table (a tiny shape: about 10 s)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def benchmark_rows(tmp_path: Path, section: str, *args: str, timeout: float = 180) -> list[str]:
    """`python -m benchmarks --quick --only SECTION ARGS` run as a user would: its table's rows
    of that section (the whole table must hold no ERROR or NOT COMPLETE)."""
    results = tmp_path / "RESULTS.md"
    options = ["--quick", "--only", section, *args, "--results", str(results)]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", *options],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "COORD_"))},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = results.read_text()
    assert "ERROR" not in table and "NOT COMPLETE" not in table, table
    assert "Temporal: CLI" in table and "CPUs: " in table
    return [line for line in table.splitlines() if line.startswith(f"| {section} |")]


def test_quick_overhead_on_a_tiny_chain(tmp_path: Path) -> None:
    rows = benchmark_rows(tmp_path, "overhead", "--shape", "2x1", timeout=120)
    # makespans, per task and ratio, the jailed baseline, CPU, where the time goes
    assert len(rows) == 5, rows
    assert "chain of 2 (2 no-op tasks" in rows[0] and "bare Temporal DAG" in rows[0]
    assert "x (the implementation phase alone" in rows[1]
    assert re.search(r"\| jailed bare [\d.]+ m?s \([\d.]+x bare\): coord [\d.]+x \|", rows[2])
    assert re.search(
        r"CPU per task .*\| coord [\d.]+ ms \(worker [\d.]+, commands [\d.]+, server [\d.]+\), "
        r"bare [\d.]+ ms \(worker [\d.]+, server [\d.]+\): [\d.]+x",
        rows[3],
    ), rows[3]
    assert "activities running" in rows[4] and "workflow tasks" in rows[4]


def test_landing_section_on_a_tiny_shape(tmp_path: Path) -> None:
    """Tasks that write a file (commit, merge, the clone's checkout) beside no-op tasks."""
    rows = benchmark_rows(tmp_path, "landing", "--shape", "2x2")
    assert len(rows) == 2, rows
    assert "2 layers x 2, each task writing a file of its own" in rows[0], rows[0]
    assert re.search(r"per task, no-op [\d.]+ m?s \(\+", rows[0]), rows[0]
    assert re.search(r"ms \(worker [\d.]+, commands [\d.]+, server [\d.]+\), no-op", rows[1])


def test_cli_start_up_section(tmp_path: Path) -> None:
    """The `cli` section times `coord` commands as fresh processes against `python -c pass`."""
    rows = benchmark_rows(tmp_path, "cli")
    assert len(rows) == 7, rows  # the floor, five commands, one real `coord list`
    assert "`python -c pass`" in rows[0]
    for command, row in zip(
        ("status", "list", "resolve", "watch", "report"), rows[1:6], strict=True
    ):
        assert f"`coord {command} --help`" in row and "x), CPU " in row and "< 500 ms" in row
    assert "`coord list --limit 20` against the server" in rows[6]


def test_big_repo_section_quick(tmp_path: Path) -> None:
    """Tasks in a repository of many files (500 with --quick), beside the one-file one."""
    rows = benchmark_rows(tmp_path, "big-repo")
    assert len(rows) == 2, rows
    assert "2 layers x 2, each task writing a file" in rows[0], rows[0]
    assert "in a repository of 500 files" in rows[0], rows[0]
    assert re.search(r"per task, one file [\d.]+ m?s \(\+", rows[0]), rows[0]
    assert re.search(r"ms \(worker [\d.]+, commands [\d.]+, server [\d.]+\), one file", rows[1])
