"""What a plan read from a GitHub issue may not say (pure).

Anyone who can open or edit an issue writes the plan `coord run --from-issue` runs on the
worker. The tasks, gates and setup commands run in the jail like any plan's; but some settings
reach past it, to the worker's secrets, its files or the remote, and only the operator may
choose those: in a plan file on their own machine, not in an issue's YAML block.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from coordinator.plan import Plan


def _outside(path: str) -> bool:
    parts = PurePosixPath(path)
    return parts.is_absolute() or ".." in parts.parts or path.startswith("~")


def untrusted_settings(plan: Plan, *, issue_repository: str | None) -> list[str]:
    """The settings of an issue's plan that only a local plan file may set, each said as the
    issue's YAML block said it; [] when there are none. `issue_repository`: the clone URL the
    plan must run on (None: the operator gave --repo, which wins anyway)."""
    found = []
    if plan.confine != "auto":
        found.append(f"confine: {plan.confine} (only the operator may loosen or require the jail)")
    if plan.env_from:
        found.append(f"env_from: {plan.env_from} (the worker's variables)")
    if issue_repository is not None and plan.repository != issue_repository:
        found.append(f"repository: {plan.repository} (an issue's plan runs on its repository)")
    if isinstance(plan.status_file, str) and _outside(plan.status_file):
        found.append(f"status_file: {plan.status_file} (a file outside the clone)")
    found += [f"context: {c} (a file outside the clone)" for c in plan.context if _outside(c)]
    if plan.specialists_dir is not None and _outside(plan.specialists_dir):
        found.append(f"specialists_dir: {plan.specialists_dir} (a folder outside the clone)")
    return found
