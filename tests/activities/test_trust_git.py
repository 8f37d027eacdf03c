"""Git and the worker's trust: no hook a specialist plants ever runs, no git sees a secret, the
GitHub token reaches the push alone, nothing is pushed before approval, a bare repository is a
repository, and the pull request speaks to a reviewer. Real git, the local GitHub of
tests/github_server.py with the real PyGithub client, and the real Temporal dev server."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.git import git_env, run_git
from activities.git_auth import token_helper
from activities.github import GithubActivities
from activities.workspace import WorkspaceActivities
from coordinator.escalation import ApprovalAnswer
from coordinator.execution import PrepareWorkspaceInput
from coordinator.handoff import PushRequest
from coordinator.hosts import HostSettings
from tests.anthropic_server import finish, reply, serve_messages_api, tool_use
from tests.cli_support import coord
from tests.engine_support import git, make_repo, running_worker, shell_task, wait_for, write_plan
from tests.github_server import GithubServer
from tests.workflows.test_github_handoff import secret_forms, start
from workflows.execution import ExecutionWorkflow

TOKEN = "fake-trust-SECRET-github-token-0123456789"
REPO = "acme/app"
# Hooks git would run in the commands the coordinator issues (commit, merge, checkout,
# worktree add, fetch, push): a specialist plants every one of them.
HOOKS = (
    "pre-push",
    "reference-transaction",
    "post-checkout",
    "pre-commit",
    "commit-msg",
    "post-commit",
    "post-merge",
    "post-rewrite",
    "post-index-change",
    "pre-auto-gc",
)


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GithubServer]:
    server = GithubServer(tmp_path / "github", token=TOKEN).start()
    yield server
    server.stop()


def plant_hooks(marks: Path) -> str:
    """A shell command that installs every hook in the repository's common git folder (where
    the clone's hooks live); each one writes its environment into `marks` when it runs."""
    steps = [
        'hooks="$(git rev-parse --path-format=absolute --git-common-dir)/hooks"',
        'mkdir -p "$hooks"',
    ]
    for hook in HOOKS:
        steps.append(f"printf '#!/bin/sh\\nenv > {marks}/{hook}.$$\\n' > \"$hooks/{hook}\"")
        steps.append(f'chmod +x "$hooks/{hook}"')
    return " && ".join(steps)


def git_spy(folder: Path, log: Path) -> Path:
    """A `git` first on PATH that appends its arguments and environment to `log`, then runs
    the real git: what every git started by name was given."""
    real = shutil.which("git")
    assert real is not None
    folder.mkdir(parents=True, exist_ok=True)
    spy = folder / "git"
    spy.write_text(
        f'#!/bin/sh\n{{ printf "ARGS %s\\n" "$*"; env; echo; }} >> "{log}"\nexec "{real}" "$@"\n'
    )
    spy.chmod(0o755)
    return folder


def spied_gits(log: Path, github: GithubServer) -> str:
    """What the spy logged, less the local GitHub's own git (in its bare repositories)."""
    entries = log.read_text().split("ARGS ")[1:]
    return "ARGS ".join(e for e in entries if f"PWD={github.root}" not in e)


# --------------------------------------------------------------------------- git alone


async def test_git_gets_no_secret_and_runs_no_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = await asyncio.create_subprocess_shell(plant_hooks(marks), cwd=repo)
    assert await proc.wait() == 0
    # A file-system monitor is a command git runs too.
    git(repo, "config", "core.fsmonitor", f"env > {marks}/fsmonitor.$$; false")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-trust-key")
    monkeypatch.setenv("SOME_SERVICE_PASSWORD", "hunter2-fake")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))  # would send git astray

    shown = await run_git("-c", "alias.showenv=!env", "showenv", cwd=repo)
    (repo / "b.txt").write_text("b\n")
    for args in (
        ("checkout", "-q", "-b", "other"),
        ("add", "-A"),
        ("commit", "-q", "-m", "b"),
        ("status", "--short"),
        ("checkout", "-q", "main"),
        ("merge", "-q", "--no-ff", "-m", "merge", "other"),
        ("worktree", "add", "-q", str(tmp_path / "wt"), "-b", "wt"),
    ):
        result = await run_git(*args, cwd=repo)
        assert result.returncode == 0, (args, result.stderr)

    assert shown.returncode == 0 and "PATH=" in shown.stdout and "HOME=" in shown.stdout
    for secret in (TOKEN, "sk-ant-fake-trust-key", "hunter2-fake", "GIT_DIR="):
        assert secret not in shown.stdout
    assert (repo / ".git" / "hooks" / "post-commit").is_file()  # planted, never run:
    assert sorted(p.name for p in marks.iterdir()) == []


async def test_the_token_goes_only_to_the_git_it_was_made_for(tmp_path: Path) -> None:
    async with token_helper("https://github.example:8443/acme/app.git", TOKEN) as auth:
        assert not any(TOKEN in value for value in auth.env.values())
        assert auth.env["GIT_CONFIG_KEY_1"] == "credential.https://github.example:8443.helper"
        helper = auth.env["GIT_CONFIG_VALUE_1"].removeprefix("!")
        socket_dir = Path(helper.rsplit(" ", 1)[1].strip("'")).parent
        assert oct(socket_dir.stat().st_mode & 0o777) == "0o700"

        async def ask(register: bool) -> str:
            # As git runs a helper: through a shell, the request on stdin.
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                f"{helper} get",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            if register:
                auth.started(proc.pid)  # this shell plays the git the worker started
            out, _ = await proc.communicate(b"protocol=https\nhost=github.example:8443\n\n")
            return out.decode()

        assert await ask(register=True) == f"username=x-access-token\npassword={TOKEN}\n"
        # Any other process of the same user that finds the socket gets nothing.
        assert await ask(register=False) == ""
        assert (auth.served, auth.refused) == (1, 1)
    assert not socket_dir.exists()


async def test_a_push_runs_no_planted_hook_and_no_git_holds_the_token(
    tmp_path: Path, github: GithubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    github.add_repo(REPO, repo)
    git(repo, "checkout", "-q", "-b", "coord/x1")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = await asyncio.create_subprocess_shell(plant_hooks(marks), cwd=repo)
    assert await proc.wait() == 0
    # Configuration a specialist could write into the clone, for the git that holds the token:
    # a helper of its own, and every request through a proxy it runs.
    git(repo, "config", "credential.helper", f"!f() {{ cat > {marks}/helper.$$; }}; f")
    git(repo, "config", "http.proxy", "http://127.0.0.1:9")
    log = tmp_path / "git.log"
    monkeypatch.setenv("PATH", f"{git_spy(tmp_path / 'spy', log)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", github.api_url)
    acts = GithubActivities(seconds_between_requests=None, seconds_between_writes=None)
    request = PushRequest(execution_id="x1", repo=REPO, workspace=str(repo), branch="coord/x1")
    pushed = await ActivityEnvironment().run(acts.push, request)
    monkeypatch.undo()

    assert pushed.pushed and github.branch_head(REPO, "coord/x1") == git(repo, "rev-parse", "HEAD")
    spied = spied_gits(log, github)
    assert "-c core.hooksPath=/dev/null" in spied and " push --porcelain " in spied
    for form in secret_forms(TOKEN):
        assert form.decode() not in spied, "a git got the token in its environment or arguments"
    assert sorted(p.name for p in marks.iterdir()) == []  # no hook, no planted helper ran


# --------------------------------------------------------------------------- whole executions


@pytest.mark.parametrize("planter", ["command", "claude"])
async def test_hooks_planted_by_a_specialist_never_run_nor_see_a_secret(
    planter: str,
    client: Client,
    task_queue: str,
    tmp_path: Path,
    github: GithubServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    plant = plant_hooks(marks) + " && echo planted > planted.txt"
    if planter == "command":
        task: dict[str, Any] = shell_task("plant", plant)
    else:
        task = {"id": "plant", "title": "Task plant", "specialist": "implementer"}
    make_repo(tmp_path / "repo")
    github.add_repo(REPO, tmp_path / "repo")
    plan = write_plan(
        tmp_path,
        {
            # Unjailed: the jail's read-only .git would stop the planting itself; this is git's
            # own defence, for workers without bwrap (and `confine: off` plans).
            "confine": "off",
            "tasks": [task, shell_task("after", "echo after > after.txt", depends_on=["plant"])],
            "handoff": {"github": {"repo": REPO}},
            "approval": {"before_handoff": False},
        },
    )
    log = tmp_path / "git.log"
    with serve_messages_api() as api:
        if planter == "claude":
            api.script(
                reply(tool_use("bash", {"command": plant})), reply(finish("planted")), key="plant"
            )
        for name, value in api.env().items():
            monkeypatch.setenv(name, value)  # ANTHROPIC_API_KEY: a secret of the worker
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_API_URL", github.api_url)
        monkeypatch.setenv(
            "PATH", f"{git_spy(tmp_path / 'spy', log)}{os.pathsep}{os.environ['PATH']}"
        )
        fast = GithubActivities(seconds_between_requests=None, seconds_between_writes=None)
        github_steps = [fast.access, fast.push, fast.pull_request, fast.status_comment]
        async with running_worker(client, task_queue, tmp_path, github_steps):
            handle = await start(client, task_queue, plan)
            report = await asyncio.wait_for(handle.result(), 120)
        monkeypatch.undo()

    assert report.status == "Complete", report.to_markdown()
    ws = report.workspace
    assert ws is not None and github.branch_head(REPO, ws.branch) == ws.head_commit
    assert git(Path(ws.path), "show", f"{ws.branch}:planted.txt") == "planted"
    hooks = Path(git(Path(ws.path), "rev-parse", "--path-format=absolute", "--git-common-dir"))
    assert all((hooks / "hooks" / hook).is_file() for hook in HOOKS)  # planted ...
    assert sorted(p.name for p in marks.iterdir()) == []  # ... and none ever ran
    spied = spied_gits(log, github)
    # The spy saw the coordinator's gits: the push, and the commit's `add -A` (its tree and
    # commit object are written in-process by libgit2: activities/git_objects.py).
    assert " push --porcelain " in spied and " add -A\n" in spied
    for secret in [api.api_key, *(f.decode() for f in secret_forms(TOKEN))]:
        assert secret not in spied, "a git got a secret in its environment or arguments"


BREAKDOWN = (
    "# Greeting\n"
    "\n"
    "```yaml\n"
    "reviewer: null\n"
    "```\n"
    "\n"
    "## L0: Words\n"
    "\n"
    "- [ ] T1: Write hello.txt (shell)\n"
    "  ```sh\n"
    "  echo hello > hello.txt\n"
    "  ```\n"
)


async def test_a_run_from_an_issue_pushes_nothing_before_approval_and_its_pr_is_for_people(
    cli_env: dict[str, str],
    worker: None,
    client: Client,
    tmp_path: Path,
    github: GithubServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The repository is the issue's, by URL; the worker has git credentials for it (as
    README says to configure for private ones), so it could push there at any time."""
    home = tmp_path / "home"
    home.mkdir()
    host = github.web_url.removeprefix("http://")
    (home / ".git-credentials").write_text(f"http://x-access-token:{TOKEN}@{host}\n")
    (home / ".gitconfig").write_text(
        f"[credential]\n\thelper = store --file={home}/.git-credentials\n"
    )
    monkeypatch.setenv("HOME", str(home))  # the worker's (in this process)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", github.api_url)
    env = {
        **cli_env,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": github.api_url,
        "COORD_UI_URL": "http://127.0.0.1:8233",  # the embedded server's UI, as by default
    }
    github.add_repo(REPO, make_repo(tmp_path / "repo"))
    number = github.add_issue(REPO, "Greeting", BREAKDOWN)
    eid = f"issue-{uuid.uuid4().hex[:8]}"

    code, out, err = await coord("run", "--from-issue", f"{REPO}#{number}", "--id", eid, env=env)
    assert code == 0, err + out
    handle = client.get_workflow_handle_for(ExecutionWorkflow.run, eid)
    waiting = await wait_for(handle, lambda p: p.pending_approval is not None)
    # Cloned from the remote, and not one push to it: no branch, no other ref.
    assert any("upload-pack" in path for path, _ in github.git_requests)
    assert not any("receive-pack" in path for path, _ in github.git_requests)
    assert github.branch_head(REPO, f"coord/{eid}") is None
    assert git(github.repos[REPO].bare, "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    assert waiting.workspace is not None and waiting.workspace.repository.startswith("http")
    assert [t.status for t in waiting.tasks] == ["passed"]

    await handle.execute_update(ExecutionWorkflow.approve, ApprovalAnswer(by="lead"))
    report = await asyncio.wait_for(handle.result(), 60)
    assert report.status == "Complete", report.to_markdown()
    ws = report.workspace
    assert ws is not None and ws.host_queue is not None
    assert github.branch_head(REPO, ws.branch) == ws.head_commit

    [pr] = github.pulls(REPO)
    body = pr.body.replace(github.web_url, "")  # GitHub's own links (local in this test)
    for internal in (ws.path, str(tmp_path), ws.host_queue, "127.0.0.1", "localhost"):
        assert internal not in body, f"{internal} in the pull request body:\n{body}"
    assert "| t1 | Write hello.txt | shell | passed | 1 |" in body
    assert "- before_handoff: approved by lead" in body
    assert f"`coord report {eid}`" in body
    # The operator's report keeps the worker's side.
    assert ws.path in report.to_markdown()


# --------------------------------------------------------------------------- repositories


def bare_copy(tmp_path: Path) -> tuple[Path, str]:
    source = make_repo(tmp_path / "work", {"README.md": "# hi\n", "src/app.py": "x = 1\n"})
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    return bare, git(source, "rev-parse", "HEAD")


@pytest.mark.parametrize("form", ["path", "file-url"])
async def test_a_bare_repository_is_cloned_as_a_repository(tmp_path: Path, form: str) -> None:
    bare, head = bare_copy(tmp_path)
    repository = str(bare) if form == "path" else f"file://{bare}"
    acts = WorkspaceActivities(tmp_path / "ws")
    request = PrepareWorkspaceInput(
        execution_id="e1", repository=repository, base_branch=None, branch="coord/e1"
    )
    ws = await ActivityEnvironment().run(acts.prepare_workspace, request)

    assert (ws.base_branch, ws.base_commit, ws.head_commit) == ("main", head, head)
    clone = Path(ws.path)
    assert git(clone, "ls-tree", "-r", "--name-only", "HEAD").split() == ["README.md", "src/app.py"]
    assert git(clone, "log", "--format=%s") == "init"


@pytest.mark.parametrize("remote_home", [True, False])
async def test_the_remote_is_the_branchs_home_only_when_allowed(
    tmp_path: Path, remote_home: bool
) -> None:
    bare, _ = bare_copy(tmp_path)
    host = HostSettings(host_queue="q@h", shared_root=tmp_path / "shared")
    acts = WorkspaceActivities(tmp_path / "ws", host)
    request = PrepareWorkspaceInput(
        execution_id="e1",
        repository=f"file://{bare}",
        base_branch=None,
        branch="coord/e1",
        remote_home=remote_home,
    )
    ws = await ActivityEnvironment().run(acts.prepare_workspace, request)

    refs = git(bare, "for-each-ref", "--format=%(refname)").split()
    if remote_home:
        assert ws.home == f"file://{bare}" and "refs/heads/coord/e1" in refs
    else:
        assert ws.home == str(tmp_path / "shared" / "e1.git") and refs == ["refs/heads/main"]
        assert git(Path(ws.home), "rev-parse", "coord/e1") == ws.head_commit


async def test_a_url_repository_waiting_to_start_has_pushed_nothing(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    bare, _ = bare_copy(tmp_path)
    plan = write_plan(
        tmp_path,
        {
            "repository": f"file://{bare}",
            "approval": {"before_start": True},
            "tasks": [shell_task("a", "echo a > a.txt")],
        },
    )
    async with running_worker(client, task_queue, tmp_path):
        handle = await start(client, task_queue, plan)
        waiting = await wait_for(handle, lambda p: p.pending_approval is not None)
        refs_while_waiting = git(bare, "for-each-ref", "--format=%(refname)")
        await handle.execute_update(ExecutionWorkflow.approve, ApprovalAnswer(by="lead"))
        report = await asyncio.wait_for(handle.result(), 60)

    assert refs_while_waiting == "refs/heads/main"
    assert report.status == "Complete", report.to_markdown()
    ws = report.workspace
    assert ws is not None and waiting.workspace is not None
    # Its home is the coordinator's shared root, which has every merged task.
    assert ws.home == str(tmp_path / "shared" / f"{handle.id}.git")
    assert git(Path(ws.home), "rev-parse", ws.branch) == ws.head_commit
    assert git(bare, "for-each-ref", "--format=%(refname)") == "refs/heads/main"


def test_git_speaks_english_to_the_coordinator_whatever_the_workers_locale() -> None:
    """The coordinator reads git's messages (a lock in the way, a repository without a
    commit): a translated git would hide them. The character type stays the worker's."""
    env = git_env(base={"LC_ALL": "de_DE.UTF-8", "LANGUAGE": "de", "LANG": "de_DE.UTF-8"})
    assert env["LC_MESSAGES"] == "C" and "LC_ALL" not in env
    assert env["LC_CTYPE"] == "de_DE.UTF-8"
    assert git_env(base={})["LC_MESSAGES"] == "C"
