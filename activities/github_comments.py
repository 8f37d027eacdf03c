"""Answers by comment: read the `/coord ...` comments written on the plan's issue or pull
request since the last one read (with each author's permission, from GitHub's collaborator
permission API), and reply to one. The reply carries a marker naming the comment it answers,
so a retried or repeated reply finds the first one and posts nothing. The token stays in the
worker's environment (activities/github.py)."""

from __future__ import annotations

from github import Github, GithubException
from github.Repository import Repository
from temporalio import activity

from activities.github import GithubActivities
from activities.github_client import truncate_body
from coordinator.comment_commands import (
    MAX_COMMENT_CHARS,
    CommandComment,
    CommandsRequest,
    CommandsResult,
    ReplyRef,
    ReplyRequest,
    is_command,
    reply_marker,
)


class GithubCommentActivities(GithubActivities):
    """Built like GithubActivities (the same environment and throttles)."""

    @activity.defn(name="github_read_commands")
    async def read_commands(self, request: CommandsRequest) -> CommandsResult:
        """The command comments newer than `after_id`, oldest first, each with its author's
        permission; with no `after_id`, only where the comments end now."""

        def work(gh: Github) -> CommandsResult:
            repo = gh.get_repo(request.repo)
            comments = list(repo.get_issue(request.number).get_comments())
            last_id = max([c.id for c in comments] + [request.after_id or 0])
            if request.after_id is None:
                return CommandsResult(last_id=last_id)
            permissions: dict[str, str] = {}
            found: list[CommandComment] = []
            for comment in sorted(comments, key=lambda c: c.id):
                body = comment.body or ""
                if comment.id <= request.after_id or not is_command(body):
                    continue
                login = comment.user.login if comment.user else ""
                if login not in permissions:
                    permissions[login] = _permission(repo, login)
                found.append(
                    CommandComment(
                        id=comment.id,
                        login=login,
                        body=body[:MAX_COMMENT_CHARS],
                        permission=permissions[login],
                        url=comment.html_url or "",
                    )
                )
            return CommandsResult(commands=found, last_id=last_id)

        return await self._call(
            f"reading the comments of #{request.number} in {request.repo}", work
        )

    @activity.defn(name="github_reply")
    async def reply(self, request: ReplyRequest) -> ReplyRef:
        """The execution's reply to one comment, posted once."""
        marker = reply_marker(request.execution_id, request.comment_id)
        body = f"{marker}\n" + truncate_body(request.body, "see the Temporal UI")

        def work(gh: Github) -> ReplyRef:
            issue = gh.get_repo(request.repo).get_issue(request.number)
            for comment in issue.get_comments():
                if (comment.body or "").startswith(marker):
                    return ReplyRef(id=comment.id)
            return ReplyRef(id=issue.create_comment(body).id, created=True)

        return await self._call(
            f"replying to comment {request.comment_id} on #{request.number} in {request.repo}",
            work,
        )


def _permission(repo: Repository, login: str) -> str:
    """GitHub's permission of `login` on the repository; "none" for someone GitHub does not
    know as a collaborator (404) or a deleted account (no login)."""
    if not login:
        return "none"
    try:
        permission = repo.get_collaborator_permission(login)
    except GithubException as err:
        if err.status == 404:
            return "none"
        raise
    return permission
