"""Why a task's commit was refused when its worktree holds git repositories of its own
(activities/nested_repositories.py finds them). Pure: no I/O."""

from __future__ import annotations

import shlex

from coordinator.conflicts import named

SHOWN = 10  # folders named; "and N more" after that


def nested_left(folders: list[str]) -> str:
    """For the next attempt (and the human): which folders, why, and the ways out."""
    one = len(folders) == 1
    first = folders[0] if folders else "FOLDER"
    remove = f"rm -rf -- {shlex.quote('./' + first + '/.git')}"
    return (
        f"the commit was refused: {named([f + '/' for f in folders], SHOWN)} "
        f"{'is a git repository of its own' if one else 'are git repositories of their own'}"
        f" (a .git inside). git would commit {'it' if one else 'each'} as a bare submodule "
        f"link, without its files. To commit the files, delete the folder's .git ({remove}"
        f"{'' if one else ', and the same for the others'}); if the folder is not part of "
        "the change, delete it or add it to .gitignore."
    )
