"""A local GitHub for tests: the REST endpoints the handoff calls (PyGithub talks to it through
`base_url`), git over smart HTTP (`git http-backend`) on bare repositories for pushes, and a
webhook receiver. State lives in memory; every request is recorded so tests can count calls
and prove nothing happened twice; faults (status codes, rate limits, failures after the work
was done) are injected per route.

It answers like GitHub: the same status codes and error bodies (401 Bad credentials, 403 rate
limits with `x-ratelimit-*` headers, 404 Not Found, 422 Validation Failed with its `errors`),
URLs built from its own address under `/api/v3` (the GitHub Enterprise layout), pagination
with `Link` headers, and one number sequence for the issues and pull requests of a repository.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/api/v3"
DOCS = "https://docs.github.com/rest"

Json = dict[str, Any]


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    message: str
    after: bool  # do the work first, then answer with the fault (a reply lost in transit)
    login: str | None = None  # only requests by this person (None: anyone's)


@dataclass
class Call:
    method: str
    path: str  # without the API prefix and the query
    query: dict[str, list[str]]
    status: int
    at: float
    body: Any = None


@dataclass
class Repo:
    owner: str
    name: str
    bare: Path
    id: int

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Issue:
    repo: str
    number: int
    title: str
    body: str
    author: str
    id: int
    pull: Json | None = None  # pull request fields when it is one
    state: str = "open"


@dataclass
class GithubServer:
    root: Path
    token: str
    user: str = "coord-bot"
    repos: dict[str, Repo] = field(default_factory=dict)
    issues: dict[tuple[str, int], Issue] = field(default_factory=dict)
    comments: dict[int, Json] = field(default_factory=dict)
    reviews: dict[int, Json] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    git_requests: list[tuple[str, str]] = field(default_factory=list)  # (service path, user)
    webhooks: list[Json] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # More people than the token's user: token -> login, and login -> repository permission
    # (admin, maintain, write, triage, read; anyone else: none), as the collaborator API says.
    people: dict[str, str] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()
        self._http: ThreadingHTTPServer | None = None

    # --- lifecycle and setup ---

    def start(self) -> GithubServer:
        server = self

        class Handler(_Handler):
            github = server

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    @property
    def web_url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.web_url + API_PREFIX

    def add_repo(self, full_name: str, source: Path) -> Path:
        """A repository whose git data is a bare clone of `source`."""
        owner, name = full_name.split("/")
        bare = self.root / "git" / owner / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "clone", "--quiet", "--bare", str(source), str(bare)],
            check=True,
            capture_output=True,
        )
        self.repos[full_name] = Repo(owner, name, bare, next(self._ids))
        return bare

    def add_issue(self, full_name: str, title: str, body: str) -> int:
        with self._lock:
            number = self._next_number(full_name)
            self.issues[(full_name, number)] = Issue(
                full_name, number, title, body, "a-human", next(self._ids)
            )
            return number

    def add_person(self, login: str, token: str, permission: str) -> None:
        """Someone who can call the API with `token` (to comment, say) and has `permission`
        on every repository."""
        self.people[token] = login
        self.permissions[login] = permission

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str | None = None,
        after: bool = False,
        login: str | None = None,
    ) -> None:
        """Answer the next `times` requests matching (method, path regex) with `status`
        (only those by `login`, if given)."""
        default = {401: "Bad credentials", 404: "Not Found", 403: "Forbidden"}
        self.faults.append(
            Fault(
                method,
                re.compile(path),
                status,
                times,
                headers or {},
                message or default.get(status, "Server Error"),
                after,
                login,
            )
        )

    # --- what happened ---

    def requests(self, method: str, path: str) -> list[Call]:
        pattern = re.compile(path)
        with self._lock:
            return [c for c in self.calls if c.method == method and pattern.fullmatch(c.path)]

    def count(self, method: str, path: str) -> int:
        return len(self.requests(method, path))

    def pulls(self, full_name: str) -> list[Issue]:
        return [i for (r, _), i in self.issues.items() if r == full_name and i.pull is not None]

    def issue_comments(self, full_name: str, number: int) -> list[Json]:
        return [
            c for c in self.comments.values() if (c["_repo"], c["_number"]) == (full_name, number)
        ]

    def branch_head(self, full_name: str, branch: str) -> str | None:
        return _rev_parse(self.repos[full_name].bare, f"refs/heads/{branch}")

    # --- JSON as GitHub writes it ---

    def _user(self, login: str) -> Json:
        return {
            "login": login,
            "id": sum(map(ord, login)),  # stable across runs
            "type": "User",
            "url": f"{self.api_url}/users/{login}",
            "html_url": f"{self.web_url}/{login}",
        }

    def _repo_json(self, repo: Repo) -> Json:
        return {
            "id": repo.id,
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user(repo.owner),
            "private": True,
            "default_branch": "main",
            "url": f"{self.api_url}/repos/{repo.full_name}",
            "html_url": f"{self.web_url}/{repo.full_name}",
            "clone_url": f"{self.web_url}/{repo.full_name}.git",
            "permissions": {"admin": False, "push": True, "pull": True},
        }

    def _part(self, repo: Repo, ref: str) -> Json:
        return {
            "label": f"{repo.owner}:{ref}",
            "ref": ref,
            "sha": _rev_parse(repo.bare, f"refs/heads/{ref}") or "0" * 40,
            "user": self._user(repo.owner),
            "repo": self._repo_json(repo),
        }

    def _issue_json(self, issue: Issue) -> Json:
        api = f"{self.api_url}/repos/{issue.repo}/issues/{issue.number}"
        data: Json = {
            "id": issue.id,
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "state": issue.state,
            "user": self._user(issue.author),
            "url": api,
            "comments_url": f"{api}/comments",
            "html_url": f"{self.web_url}/{issue.repo}/issues/{issue.number}",
            "comments": len(self.issue_comments(issue.repo, issue.number)),
        }
        if issue.pull is not None:
            data["pull_request"] = {
                "url": f"{self.api_url}/repos/{issue.repo}/pulls/{issue.number}",
                "html_url": f"{self.web_url}/{issue.repo}/pull/{issue.number}",
            }
        return data

    def _pull_json(self, issue: Issue) -> Json:
        assert issue.pull is not None
        repo = self.repos[issue.repo]
        api = f"{self.api_url}/repos/{issue.repo}"
        return {
            "id": issue.id,
            "number": issue.number,
            "state": issue.state,
            "title": issue.title,
            "body": issue.body,
            "draft": issue.pull["draft"],
            "user": self._user(issue.author),
            "url": f"{api}/pulls/{issue.number}",
            "html_url": f"{self.web_url}/{issue.repo}/pull/{issue.number}",
            "issue_url": f"{api}/issues/{issue.number}",
            "comments_url": f"{api}/issues/{issue.number}/comments",
            "review_comments_url": f"{api}/pulls/{issue.number}/comments",
            "head": self._part(repo, issue.pull["head"]),
            "base": self._part(repo, issue.pull["base"]),
            "merged": False,
        }

    def _comment_json(self, comment: Json) -> Json:
        repo, number = comment["_repo"], comment["_number"]
        return {
            "id": comment["id"],
            "body": comment["body"],
            "user": self._user(comment["_author"]),
            "url": f"{self.api_url}/repos/{repo}/issues/comments/{comment['id']}",
            "html_url": f"{self.web_url}/{repo}/issues/{number}#issuecomment-{comment['id']}",
            "issue_url": f"{self.api_url}/repos/{repo}/issues/{number}",
            "created_at": comment["created_at"],
            "updated_at": comment["updated_at"],
        }

    def _review_json(self, review: Json) -> Json:
        repo, number = review["_repo"], review["_number"]
        return {
            "id": review["id"],
            "body": review["body"],
            "state": review["state"],
            "user": self._user(self.user),
            "commit_id": review["commit_id"],
            "html_url": f"{self.web_url}/{repo}/pull/{number}#pullrequestreview-{review['id']}",
            "pull_request_url": f"{self.api_url}/repos/{repo}/pulls/{number}",
            "submitted_at": review["submitted_at"],
        }

    def _next_number(self, full_name: str) -> int:
        return 1 + max((n for (r, n) in self.issues if r == full_name), default=0)

    # --- the REST API ---

    def handle_api(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, login: str = ""
    ) -> tuple[int, Json | list[Json], dict[str, str]]:
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", r"/repos/([^/]+/[^/]+)", self._get_repo),
            ("GET", r"/repos/([^/]+/[^/]+)/pulls", self._list_pulls),
            ("POST", r"/repos/([^/]+/[^/]+)/pulls", self._create_pull),
            ("GET", r"/repos/([^/]+/[^/]+)/pulls/(\d+)", self._get_pull),
            ("PATCH", r"/repos/([^/]+/[^/]+)/pulls/(\d+)", self._edit_pull),
            ("GET", r"/repos/([^/]+/[^/]+)/pulls/(\d+)/reviews", self._list_reviews),
            ("POST", r"/repos/([^/]+/[^/]+)/pulls/(\d+)/reviews", self._create_review),
            ("GET", r"/repos/([^/]+/[^/]+)/issues/(\d+)", self._get_issue),
            ("PATCH", r"/repos/([^/]+/[^/]+)/issues/(\d+)", self._edit_issue),
            ("GET", r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", self._list_comments),
            ("POST", r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", self._create_comment),
            ("PATCH", r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", self._edit_comment),
            (
                "GET",
                r"/repos/([^/]+/[^/]+)/collaborators/([^/]+)/permission",
                self._collaborator_permission,
            ),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                repo = self.repos.get(match.group(1))
                if repo is None:
                    return _error(404, "Not Found")
                args = [int(g) if g.isdigit() else g for g in match.groups()[1:]]
                with self._lock:
                    result: tuple[int, Json | list[Json], dict[str, str]] = handler(
                        repo, *args, query=query, body=body, login=login or self.user
                    )
                    return result
        return _error(404, "Not Found")

    def _get_repo(self, repo: Repo, **_: Any) -> Any:
        return 200, self._repo_json(repo), {}

    def _paged(self, path: str, items: list[Json], query: dict[str, list[str]]) -> Any:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        last = max(1, -(-len(items) // per_page))
        links = []
        keep = {k: v[0] for k, v in query.items() if k not in ("page", "per_page")}
        extra = "".join(f"&{k}={v}" for k, v in keep.items())
        if page < last:
            links.append(
                f'<{self.api_url}{path}?page={page + 1}&per_page={per_page}{extra}>; rel="next"'
            )
            links.append(
                f'<{self.api_url}{path}?page={last}&per_page={per_page}{extra}>; rel="last"'
            )
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, items[(page - 1) * per_page : page * per_page], headers

    def _list_pulls(self, repo: Repo, *, query: dict[str, list[str]], **_: Any) -> Any:
        state = query.get("state", ["open"])[0]
        head = query.get("head", [None])[0]
        found = []
        for issue in self.pulls(repo.full_name):
            assert issue.pull is not None
            if state != "all" and issue.state != state:
                continue
            if head is not None and head != f"{repo.owner}:{issue.pull['head']}":
                continue
            found.append(self._pull_json(issue))
        return self._paged(f"/repos/{repo.full_name}/pulls", found, query)

    def _create_pull(self, repo: Repo, *, body: Json, **_: Any) -> Any:
        head = str(body.get("head", "")).split(":")[-1]
        base = str(body.get("base", ""))
        if not body.get("title"):
            return _invalid("PullRequest", "title", "missing_field")
        if _rev_parse(repo.bare, f"refs/heads/{head}") is None:
            return _invalid("PullRequest", "head", "invalid")
        if _rev_parse(repo.bare, f"refs/heads/{base}") is None:
            return _invalid("PullRequest", "base", "invalid")
        for issue in self.pulls(repo.full_name):
            assert issue.pull is not None
            if issue.state == "open" and (issue.pull["head"], issue.pull["base"]) == (head, base):
                exists = f"A pull request already exists for {repo.owner}:{head}."
                error = {"resource": "PullRequest", "code": "custom", "message": exists}
                return (
                    422,
                    {
                        "message": "Validation Failed",
                        "errors": [error],
                        "documentation_url": DOCS,
                        "status": "422",
                    },
                    {},
                )
        number = self._next_number(repo.full_name)
        issue = Issue(
            repo.full_name,
            number,
            str(body["title"]),
            str(body.get("body") or ""),
            self.user,
            next(self._ids),
            pull={"head": head, "base": base, "draft": bool(body.get("draft", False))},
        )
        self.issues[(repo.full_name, number)] = issue
        return 201, self._pull_json(issue), {}

    def _pull(self, repo: Repo, number: int) -> Issue | None:
        issue = self.issues.get((repo.full_name, number))
        return issue if issue is not None and issue.pull is not None else None

    def _get_pull(self, repo: Repo, number: int, **_: Any) -> Any:
        issue = self._pull(repo, number)
        return (200, self._pull_json(issue), {}) if issue else _error(404, "Not Found")

    def _edit_pull(self, repo: Repo, number: int, *, body: Json, **_: Any) -> Any:
        issue = self._pull(repo, number)
        if issue is None:
            return _error(404, "Not Found")
        issue.title = body.get("title", issue.title)
        issue.body = body.get("body", issue.body)
        issue.state = body.get("state", issue.state)
        return 200, self._pull_json(issue), {}

    def _list_reviews(
        self, repo: Repo, number: int, *, query: dict[str, list[str]], **_: Any
    ) -> Any:
        if self._pull(repo, number) is None:
            return _error(404, "Not Found")
        found = [
            self._review_json(r)
            for r in self.reviews.values()
            if (r["_repo"], r["_number"]) == (repo.full_name, number)
        ]
        return self._paged(f"/repos/{repo.full_name}/pulls/{number}/reviews", found, query)

    def _create_review(self, repo: Repo, number: int, *, body: Json, **_: Any) -> Any:
        issue = self._pull(repo, number)
        if issue is None:
            return _error(404, "Not Found")
        event = body.get("event")
        if event in ("APPROVE", "REQUEST_CHANGES") and issue.author == self.user:
            what = "approve" if event == "APPROVE" else "request changes on"
            return (
                422,
                {
                    "message": "Unprocessable Entity",
                    "errors": [f"Review Can not {what} your own pull request"],
                    "documentation_url": DOCS,
                    "status": "422",
                },
                {},
            )
        if event in ("REQUEST_CHANGES", "COMMENT") and not body.get("body"):
            return _invalid("PullRequestReview", "body", "missing_field")
        state = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED"}.get(
            str(event), "COMMENTED" if event == "COMMENT" else "PENDING"
        )
        assert issue.pull is not None
        review_id = next(self._ids)
        review: Json = {
            "id": review_id,
            "body": body.get("body") or "",
            "state": state,
            "commit_id": _rev_parse(repo.bare, f"refs/heads/{issue.pull['head']}"),
            "submitted_at": _now(),
            "_repo": repo.full_name,
            "_number": number,
        }
        self.reviews[review_id] = review
        return 200, self._review_json(review), {}

    def _get_issue(self, repo: Repo, number: int, **_: Any) -> Any:
        issue = self.issues.get((repo.full_name, number))
        return (200, self._issue_json(issue), {}) if issue else _error(404, "Not Found")

    def _edit_issue(self, repo: Repo, number: int, *, body: Json, **_: Any) -> Any:
        issue = self.issues.get((repo.full_name, number))
        if issue is None:
            return _error(404, "Not Found")
        issue.title = body.get("title", issue.title)
        issue.body = body.get("body", issue.body)
        issue.state = body.get("state", issue.state)
        return 200, self._issue_json(issue), {}

    def _list_comments(
        self, repo: Repo, number: int, *, query: dict[str, list[str]], **_: Any
    ) -> Any:
        if (repo.full_name, number) not in self.issues:
            return _error(404, "Not Found")
        found = [self._comment_json(c) for c in self.issue_comments(repo.full_name, number)]
        return self._paged(f"/repos/{repo.full_name}/issues/{number}/comments", found, query)

    def _collaborator_permission(self, repo: Repo, person: str, **_: Any) -> Any:
        permission = "admin" if person == self.user else self.permissions.get(person, "none")
        return (
            200,
            {"permission": permission, "role_name": permission, "user": self._user(person)},
            {},
        )

    def _create_comment(self, repo: Repo, number: int, *, body: Json, login: str, **_: Any) -> Any:
        if (repo.full_name, number) not in self.issues:
            return _error(404, "Not Found")
        if not body.get("body"):
            return _invalid("IssueComment", "body", "missing_field")
        comment = {
            "id": next(self._ids),
            "body": body["body"],
            "created_at": _now(),
            "updated_at": _now(),
            "_repo": repo.full_name,
            "_number": number,
            "_author": login,
        }
        self.comments[comment["id"]] = comment
        return 201, self._comment_json(comment), {}

    def _edit_comment(self, repo: Repo, comment_id: int, *, body: Json, **_: Any) -> Any:
        comment = self.comments.get(comment_id)
        if comment is None or comment["_repo"] != repo.full_name:
            return _error(404, "Not Found")
        comment["body"] = body.get("body", comment["body"])
        comment["updated_at"] = _now()
        return 200, self._comment_json(comment), {}

    # --- faults ---

    def take_fault(self, method: str, path: str, after: bool, login: str = "") -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and fault.after == after
                    and fault.method == method
                    and fault.path.fullmatch(path)
                    and fault.login in (None, login)
                ):
                    fault.times -= 1
                    return fault
        return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str) -> tuple[int, Json, dict[str, str]]:
    return status, {"message": message, "documentation_url": DOCS, "status": str(status)}, {}


def _invalid(resource: str, field_name: str, code: str) -> tuple[int, Json, dict[str, str]]:
    return (
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": resource, "field": field_name, "code": code}],
            "documentation_url": DOCS,
            "status": "422",
        },
        {},
    )


def _rev_parse(bare: Path, ref: str) -> str | None:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=bare,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or None


class _Handler(BaseHTTPRequestHandler):
    github: GithubServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        raw = self._body()
        if url.path.startswith("/hooks/"):
            return self._webhook(method, url.path, raw)
        git = re.fullmatch(r"/([^/]+)/([^/]+)\.git/(.*)", url.path)
        if git:
            return self._git(method, git.group(1), git.group(2), git.group(3), url.query, raw)
        if not url.path.startswith(API_PREFIX):
            return self._send(404, {"message": "Not Found"}, {})
        path = url.path[len(API_PREFIX) :] or "/"
        query = parse_qs(url.query)
        body = json.loads(raw) if raw else None
        gh = self.github

        def record(status: int) -> None:
            with gh._lock:
                gh.calls.append(Call(method, path, query, status, time.time(), body))

        auth = self.headers.get("Authorization", "")
        token = auth.split(" ", 1)[-1]
        login = gh.user if token == gh.token else gh.people.get(token, "")
        if auth.split(" ", 1)[0] not in ("token", "Bearer") or not login:
            record(401)
            return self._send(*_error(401, "Bad credentials"))
        fault = gh.take_fault(method, path, after=False, login=login)
        data: Json | list[Json]
        if fault is None:
            status, data, headers = gh.handle_api(method, path, query, body, login)
            fault = gh.take_fault(method, path, True, login) if status < 400 else None
        if fault is not None:
            status, data, headers = (
                fault.status,
                {
                    "message": fault.message,
                    "documentation_url": DOCS,
                    "status": str(fault.status),
                },
                fault.headers,
            )
        record(status)
        self._send(status, data, headers)

    def _send(self, status: int, data: Any, headers: dict[str, str]) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        base = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }
        for key, value in {**base, **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _webhook(self, method: str, path: str, raw: bytes) -> None:
        gh = self.github
        fault = gh.take_fault(method, path, after=False)
        if fault is not None:
            return self._send(fault.status, {"message": fault.message}, fault.headers)
        with gh._lock:
            gh.webhooks.append({"path": path, **json.loads(raw)})
        self._send(200, {"ok": True}, {})

    def _git(self, method: str, owner: str, name: str, rest: str, query: str, raw: bytes) -> None:
        """Smart HTTP through `git http-backend`, behind the token (Basic, as GitHub takes it)."""
        gh = self.github
        user = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            login, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if password == gh.token:
                user = login
        if user is None:
            body = b"Invalid username or token.\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="GitHub"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if f"{owner}/{name}" not in gh.repos:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with gh._lock:
            gh.git_requests.append((f"{rest}?{query}" if query else rest, user))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(gh.root / "git"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{owner}/{name}.git/{rest}",
            "REQUEST_METHOD": method,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(raw)),
            "REMOTE_USER": user,
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_HTTP_MAX_REQUEST_BUFFER": "100M",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=raw, env=env, capture_output=True)
        head, _, body = out.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, body = out.stdout.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
