"""Performance measurements (not part of the test run): `python -m benchmarks [--quick]`.

Starts its own Temporal dev server (in memory, on a free port) and `python -m worker`
processes, runs the sections, and prints one table of medians over the repetitions (with the
range in brackets), which it also writes to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shlex
import shutil
import sys
import tempfile
import textwrap
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from activities.child_watcher import watch_children_with_pidfds
from benchmarks import sections
from benchmarks.bench import CHAIN_50, LAYERS_8X8, LAYERS_20X50, Bench, Options, Row, Shape, shape
from benchmarks.infra import ROOT, Coord, DevServer, Workers, machine_facts, make_repo, process_env
from benchmarks.jailed import jail_described

RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def parse_shape(text: str) -> Shape:
    try:
        count, width = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not LAYERSxWIDTH, e.g. 8x8 or 50x1 (a chain)"
        ) from None
    if count < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"'{text}': layers and width must be at least 1")
    return shape(count, width)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure coord against a bare Temporal DAG and plain asyncio, on its own "
        "dev server and worker processes; print one table and write it to "
        "benchmarks/RESULTS.md.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small shapes only (no 20 layers x 50, no 1,000-task memory run), one repetition "
        "unless --repeat says otherwise",
    )
    parser.add_argument("--repeat", type=int, help="repetitions per measurement (default 3)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these sections (repeat or comma-separate): {', '.join(sections.ORDER)}",
    )
    parser.add_argument(
        "--shape",
        action="append",
        type=parse_shape,
        metavar="LAYERSxWIDTH",
        help="plan shapes for the overhead and history sections instead of the defaults "
        "(50x1 = chain of 50, 8x8, and 20x50 without --quick)",
    )
    parser.add_argument(
        "--memory-timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long the 1,000-task plan may take (default 3600)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="where to write the Markdown results ('-': nowhere; default benchmarks/RESULTS.md)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (logs, workspaces)"
    )
    args = parser.parse_args(argv)
    only = [name.strip() for item in args.only or [] for name in item.split(",") if name.strip()]
    if unknown := [name for name in only if name not in sections.SECTIONS]:
        parser.error(f"unknown section {', '.join(unknown)}; choose from {sections.ORDER}")
    args.only = only or [
        name for name in sections.SECTIONS if not (args.quick and name == "memory")
    ]
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.shape is None:
        args.shape = [CHAIN_50, LAYERS_8X8]
        if not args.quick:
            args.shape.append(LAYERS_20X50)
    return args


MEASUREMENT_WIDTH = 60
RESULT_WIDTH = 72


def render(rows: list[Row]) -> str:
    """A plain-text table; long cells wrap within their column."""
    headers = ("section", "measurement", "median [min..max]", "target")
    cells = [headers] + [(r.section, r.measurement, r.result, r.target) for r in rows]
    limits = (10, MEASUREMENT_WIDTH, RESULT_WIDTH, 40)
    wrapped = [
        [
            textwrap.wrap(cell, limit, break_on_hyphens=False) or [""]
            for cell, limit in zip(row, limits, strict=True)
        ]
        for row in cells
    ]
    widths = [max(len(line) for row in wrapped for line in row[i]) for i in range(4)]
    lines = []
    for n, row in enumerate(wrapped):
        for k in range(max(len(cell) for cell in row)):
            parts = [
                (cell[k] if k < len(cell) else "").ljust(widths[i]) for i, cell in enumerate(row)
            ]
            lines.append("  ".join(parts).rstrip())
        if n == 0 or (n < len(rows) and rows[n - 1].section != rows[n].section):
            lines.append("-" * (sum(widths) + 6))
    return "\n".join(lines)


def markdown(rows: list[Row], facts: dict[str, str], command: str, when: str) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    table = [
        "| section | measurement | median [min..max] | target |",
        "|---|---|---|---|",
        *(
            f"| {r.section} | {cell(r.measurement)} | {cell(r.result)} | {cell(r.target)} |"
            for r in rows
        ),
    ]
    machine = [f"- {key}: {value}" for key, value in facts.items()]
    return "\n".join(
        [
            "# Benchmark results",
            "",
            f"Written by `{command}`, started {when} (every run rewrites this file).",
            "",
            *machine,
            "",
            *table,
            "",
        ]
    )


async def run(args: argparse.Namespace, scratch: Path) -> tuple[list[Row], bool]:
    options = Options(args.quick, args.repeat, args.shape, args.memory_timeout)
    logs = scratch / "logs"
    logs.mkdir()
    plans = scratch / "plans"
    plans.mkdir()
    server = DevServer(logs)
    workers: Workers | None = None
    ok = True
    watch_children_with_pidfds(asyncio.get_running_loop())  # as the worker does (jailed DAG)
    try:
        client = await server.start()
        env = process_env(server.address, scratch)
        workers = Workers(client, env, logs)
        worker = await workers.start()
        assert server.proc is not None
        bench = Bench(
            client=client,
            server_pid=server.proc.pid,
            workers=workers,
            worker=worker,
            coord=Coord(client, env, plans),
            repo=make_repo(scratch / "repo"),
            scratch=scratch,
            options=options,
        )
        for name, section in sections.SECTIONS.items():
            if name not in args.only:
                continue
            print(f"{name} ...", flush=True)
            started = time.monotonic()
            if bench.worker.proc.poll() is not None:
                bench.worker = await workers.start()
            try:
                await section(bench)
            except Exception as exc:
                ok = False
                traceback.print_exc()
                first = (str(exc) or type(exc).__name__).splitlines()[0]
                bench.add(name, "ERROR", f"{type(exc).__name__}: {first[:200]}")
            print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)
        return [row for name in sections.ORDER for row in bench.rows.get(name, [])], ok
    finally:
        if workers is not None:
            workers.stop_all()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    facts = machine_facts()
    facts["jail"] = jail_described()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    scratch = Path(tempfile.mkdtemp(prefix="coord-bench-"))
    try:
        rows, ok = asyncio.run(run(args, scratch))
    finally:
        gc.collect()  # drop SDK clients before interpreter shutdown (sdk-python#300)
        if args.keep:
            print(f"scratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    facts["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    print(f"coord benchmarks ({args.repeat} repetition{'s' * (args.repeat > 1)}), {when}")
    for key, value in facts.items():
        print(f"  {key}: {value}")
    print()
    print(render(rows))
    if str(args.results) != "-":
        args.results.write_text(markdown(rows, facts, command, when))
        print(f"\nwritten to {args.results}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
