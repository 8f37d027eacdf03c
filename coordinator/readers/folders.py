"""`coord run FOLDER`: which file in a folder is the plan, and which documents beside it every
specialist reads. Rules only (names in, names out); the caller lists the folder.

    specs/003-feature/   tasks.md; spec.md, plan.md, research.md, data-model.md,
                         quickstart.md, contracts/* as context        (spec-kit)
    .kiro/specs/x/       tasks.md; requirements.md, design.md         (Kiro)
    .agent-os/specs/x/   tasks.md; spec.md, spec-lite.md, sub-specs/*  (Agent OS)
    .taskmaster/         tasks/tasks.json (the tag in state.json); docs/prd.txt
    notes/topic/         plan.yaml or breakdown.md; goal.md, requirements.md, research.md,
                         plan.md                                      (the seeds)
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

# In this order of preference; a folder with two data plans must be told which.
PLAN_FILE_NAMES = (
    "plan.yaml",
    "plan.yml",
    "plan.json",
    "breakdown.md",
    "tasks.md",
    "tasks.json",
    "tasks/tasks.json",
)
_DATA_PLANS = ("plan.yaml", "plan.yml", "plan.json")
CONTEXT_BY_CONVENTION = (
    "goal.md",
    "requirements.md",
    "research.md",
    "plan.md",
    "spec.md",
    "spec-lite.md",
    "design.md",
    "data-model.md",
    "quickstart.md",
    "docs/prd.txt",
    "docs/prd.md",
)
# Folders whose files are all context (spec-kit's API contracts, Agent OS's sub-specs).
CONTEXT_FOLDERS = ("contracts", "sub-specs")


def choose_plan_file(names: Collection[str]) -> str:
    """The plan among the folder's files (paths relative to it), or ValueError saying why
    there is none to pick."""
    found = [name for name in PLAN_FILE_NAMES if name in names]
    data = [name for name in found if name in _DATA_PLANS]
    if len(data) > 1:
        raise ValueError(f"the folder holds {' and '.join(data)}: name the plan file to run")
    if found:
        return data[0] if data else found[0]
    raise ValueError(f"no plan in this folder: expected one of {', '.join(PLAN_FILE_NAMES)}")


def name_hint(folder: str, plan_file: str) -> str | None:
    """A plan name from where it is: `specs/003-feature/` -> `003-feature`; a Taskmaster
    folder takes its project's name (the folder holding `.taskmaster`)."""
    parts = [p for p in re.split(r"[\\/]+", folder) if p and p != "."]
    if plan_file.endswith("tasks.json"):
        while parts and parts[-1] in (".taskmaster", "tasks"):
            parts.pop()
    return parts[-1] if parts else None


def current_tag(state_json: str) -> str | None:
    """Taskmaster's `.taskmaster/state.json` names the tag in use."""
    try:
        state = json.loads(state_json)
    except (json.JSONDecodeError, RecursionError):
        return None
    tag = state.get("currentTag") if isinstance(state, dict) else None
    return tag if isinstance(tag, str) and tag.strip() else None


__all__ = [
    "CONTEXT_BY_CONVENTION",
    "CONTEXT_FOLDERS",
    "PLAN_FILE_NAMES",
    "choose_plan_file",
    "current_tag",
    "name_hint",
]
