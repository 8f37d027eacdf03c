"""Why a task's commit was refused when its worktree holds git repositories of its own
(activities/nested_repositories.py finds them). Pure: no I/O."""

from __future__ import annotations

from coordinator.conflicts import named

SHOWN = 10  # folders named; "and N more" after that


def nested_left(folders: list[str]) -> str:
    """For the next attempt (and the human): which folders, why, and the ways out."""
    first = folders[0] if folders else "<folder>"
    return (
        f"the commit was refused: {named([f + '/' for f in folders], SHOWN)} "
        f"{'is a git repository' if len(folders) == 1 else 'are git repositories'} of "
        "its own (a .git inside). git would commit "
        f"{'it' if len(folders) == 1 else 'each'} as a bare submodule link, without its "
        f"files. To commit the files, delete the folder's .git (rm -rf {first}/.git); if "
        "the folder is not part of the change, delete it or add it to .gitignore."
    )
