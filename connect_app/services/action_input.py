"""What a create-branch / create-pull-request request may contain, checked field by field
(no Flask, no database): each problem a 400 naming the field, in words the dialog can show.
Branch names follow git's rules (:mod:`connect_app.services.branch_names`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connect_app.errors import ValidationError
from connect_app.indexing.issue_keys import is_issue_key
from connect_app.services.admin_input import FieldError
from connect_app.services.branch_names import branch_name_problem, ref_problem

TITLE_MAX_LENGTH = 255
BODY_MAX_LENGTH = 60_000  # GitHub refuses descriptions over 65,536 characters


@dataclass(frozen=True)
class BranchRequest:
    repository_id: int
    source: str
    name: str

    def stored(self) -> dict[str, Any]:
        return {"source": self.source, "name": self.name}


@dataclass(frozen=True)
class PullRequestRequest:
    repository_id: int
    source: str
    target: str
    title: str
    body: str

    def stored(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "title": self.title, "body": self.body}


def parse_issue_key(raw: str) -> str:
    key = (raw or "").strip().upper()
    if not is_issue_key(key):
        raise ValidationError(f"{raw[:80]!r} is not a Jira issue key such as ABC-123.", code="bad_issue_key")
    return key


def _object(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise FieldError("body", "The request body must be a JSON object.", code="invalid_json")
    return data


def _repository_id(data: Mapping[str, Any]) -> int:
    value = data.get("repository_id")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
        raise FieldError("repository_id", "Pick a repository (repository_id must be a repository's id).")
    return value


def _text(data: Mapping[str, Any], field: str, what: str, *, max_length: int, required: bool = True) -> str:
    value = data.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise FieldError(field, f"{what} is required.", code="missing_field")
    value = value.strip()
    if required and not value:
        raise FieldError(field, f"{what} is required.", code="missing_field")
    if len(value) > max_length:
        raise FieldError(field, f"{what} must be at most {max_length} characters.")
    if "\x00" in value:
        raise FieldError(field, f"{what} must not contain NUL characters.")
    return value


def _branch(data: Mapping[str, Any], field: str, what: str, *, allow_sha: bool = False) -> str:
    value = _text(data, field, what, max_length=1024)
    problem = ref_problem(value) if allow_sha else branch_name_problem(value)
    if problem:
        raise FieldError(field, f"{what} {value!r} {problem}.", code="invalid_branch_name")
    return value


def parse_branch_request(data: Any) -> BranchRequest:
    body = _object(data)
    return BranchRequest(
        repository_id=_repository_id(body),
        source=_branch(body, "source", "The source branch", allow_sha=True),
        name=_branch(body, "name", "The branch name"),
    )


def parse_pull_request_request(data: Any) -> PullRequestRequest:
    body = _object(data)
    request = PullRequestRequest(
        repository_id=_repository_id(body),
        source=_branch(body, "source", "The source branch"),
        target=_branch(body, "target", "The target branch"),
        title=_text(body, "title", "The title", max_length=TITLE_MAX_LENGTH),
        body=_text(body, "body", "The description", max_length=BODY_MAX_LENGTH, required=False),
    )
    if request.source == request.target:
        raise FieldError("target", "The target branch must differ from the source branch.", code="same_branch")
    return request
