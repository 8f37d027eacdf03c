"""File paths named in a task's text: `Create X in backend/src/api/websocket.py`, `` `app.js` ``.

Spec-kit asks task titles to name "exact file paths", and two tasks that name the same file
must not run at once. A path is a word with a `/` whose last part has an extension
(`src/app.ts`, `backend/pyproject.toml`), or a bare file name with a common source or
config extension (`app.js`, `README.md`, `Dockerfile`). URLs, `owner/repo`, image names
(`ghcr.io/x:tag`), API routes (`/api/x`) and folders (`src/`) are not files.
"""

from __future__ import annotations

import re

_EXTENSIONS = frozenset(
    """
    py pyi ts tsx js jsx mjs cjs go rs java kt kts swift rb php cs c h cc cpp hpp m mm md
    mdx rst txt json jsonc yaml yml toml ini cfg conf env sql sh bash zsh ps1 bat html htm
    css scss sass less vue svelte astro xml proto graphql gql dart ex exs erl scala clj fs
    fsx r lua pl tf tfvars hcl gradle lock mod sum csv tsv ipynb prisma sol zig nim cmake mk
    properties plist storyboard xib csproj sln vb elm hs ml
    """.split()  # noqa: SIM905 - a word list reads better than a column
)
_BARE_NAMES = frozenset({"Dockerfile", "Makefile", "Procfile", "Gemfile", "Rakefile", "Justfile"})
# Names that look like files but are frameworks ("a Next.js page").
_NOT_FILES = frozenset(
    """
    node.js next.js vue.js nuxt.js three.js d3.js express.js nest.js react.js angular.js
    chart.js ember.js backbone.js alpine.js solid.js p5.js tf.js socket.io deno.js bun.js
    """.split()  # noqa: SIM905 - a word list reads better than a column
)
_DOTFILE = re.compile(r"^\.[a-z][a-z0-9_.-]{1,30}$")
_TOKEN = re.compile(r"[A-Za-z0-9_.@~\-/\[\]{}*$]+")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
_URLS = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)


def _is_file(token: str) -> bool:
    if not token or token.endswith("/") or _URL.match(token) or token.startswith("/api"):
        return False
    last = token.rsplit("/", 1)[-1]
    if last in _BARE_NAMES or _DOTFILE.match(last):
        return True
    if last.lower() in _NOT_FILES:
        return False
    stem, dot, extension = last.rpartition(".")
    if not dot or not stem.strip("."):
        return False
    if not re.fullmatch(r"[A-Za-z0-9]{1,10}", extension):
        return False
    if "/" in token:
        return extension.lower() in _EXTENSIONS or not extension.isdigit()
    return extension.lower() in _EXTENSIONS


def find_paths(text: str) -> list[str]:
    """The file paths in `text`, in order, each once (leading `./` and `/` dropped)."""
    found: list[str] = []
    for raw in _TOKEN.findall(_URLS.sub(" ", text).replace("`", " ")):
        token = raw.rstrip(".,;:)]}'\"").lstrip("([{'\"")
        token = re.sub(r":\d+(?:-\d+)?$", "", token)  # path:12-40
        if "@" in token.split("/")[0] or "*" in token or "{" in token or "$" in token:
            continue
        if not _is_file(token):
            continue
        path = token.lstrip("/")
        path = path.removeprefix("./")
        if path and path not in found:
            found.append(path)
    return found


__all__ = ["find_paths"]
