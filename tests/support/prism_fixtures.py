"""Session-scoped Prism mocks of the hosts' official API descriptions (see prism.py).

Each fixture starts its mock the first time a test asks for it and stops it at the end of
the session (GitHub's 13 MB description takes ~7 s to load, the others 1-4 s). All run with
``errors=False`` (request validation on; responses always sent, see prism.py for why) and
the static examples of the description; send ``Prefer: dynamic=true`` (``prefer(dynamic=True)``)
for generated data. What each fixture serves:

* ``prism_github``          api.github.com (``@octokit/openapi``); ``base_url`` = API root.
* ``prism_ghes``            GitHub Enterprise Server, newest version in ``@octokit/openapi``;
                            ``root_url`` is the server URL, ``base_url`` = root + ``/api/v3``.
* ``prism_bitbucket_cloud`` Bitbucket Cloud; ``base_url`` = root + ``/2.0``.
* ``prism_bitbucket_dc``    Bitbucket Data Center 9.2; ``root_url`` is the server URL,
                            ``base_url`` = root + ``/rest``; ``/api/1.0/...`` served as ``latest``.
* ``prism_azure_devops``    Azure DevOps Git 7.1; ``base_url`` stands for ``https://dev.azure.com``.
* ``prism_azure_devops_hooks`` Azure DevOps Service Hooks 7.1 (subscriptions), same root.
* ``prism_jira_platform``   Jira Cloud platform REST; ``root_url`` is the Jira site's baseUrl.
* ``prism_jira_software``   Jira Software incl. ``/rest/devinfo/0.10``; ``root_url`` is the site.
* ``prism_github_loopback`` api.github.com pruned to what the GitHub connector calls, its
                            repository examples cloning from a real repository on loopback
                            (:class:`GitHubOnLoopback`): indexes against it finish.

Known gaps between the descriptions and the real services are patched in the served copy
(transforms in prism.py):

* GitHub also answers ``Accept: application/vnd.github+json`` (not the ``.v3+json`` variant:
  every extra media type slows GitHub's startup);
* Jira accepts ``Authorization: JWT ...`` (Connect);
* Azure DevOps accepts PAT basic auth and wraps lists as ``{"count", "value"}``;
* Bitbucket Cloud's create-branch/create-tag declare the JSON body their prose documents;
* Bitbucket DC serves ``/api/1.0/...`` like ``/api/latest/...``.

Tests using these fixtures are contract tests: mark them ``@pytest.mark.slow``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.git_server import GitHttpServer, make_repo
from tests.support.prism import (
    PrismError,
    PrismMock,
    accept_github_media_types,
    alias_bitbucket_dc_versions,
    allow_connect_jwt,
    azure_devops_fixes,
    fix_bitbucket_cloud,
    ghes_versions,
    github_spec_path,
    shared_spec_path,
)

# GitHub's description loads in ~7 s on an idle machine, 20 s+ on a busy CI box.
GITHUB_TIMEOUT = 100.0


def _serve(spec: Callable[[], Path], **options: Any) -> Iterator[PrismMock]:
    try:
        mock = PrismMock(spec(), **options).start()
    except (PrismError, FileNotFoundError) as exc:
        pytest.fail(f"could not start Prism: {exc}", pytrace=False)
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture(scope="session")
def prism_github() -> Iterator[PrismMock]:
    yield from _serve(github_spec_path, transform=accept_github_media_types, timeout=GITHUB_TIMEOUT)


@pytest.fixture(scope="session")
def prism_ghes() -> Iterator[PrismMock]:
    yield from _serve(
        lambda: github_spec_path(ghes_versions()[-1]), transform=accept_github_media_types, timeout=GITHUB_TIMEOUT
    )


@pytest.fixture(scope="session")
def prism_bitbucket_cloud() -> Iterator[PrismMock]:
    yield from _serve(lambda: shared_spec_path("bitbucket-cloud"), transform=fix_bitbucket_cloud)


@pytest.fixture(scope="session")
def prism_bitbucket_dc() -> Iterator[PrismMock]:
    yield from _serve(lambda: shared_spec_path("bitbucket-datacenter"), transform=alias_bitbucket_dc_versions)


@pytest.fixture(scope="session")
def prism_azure_devops() -> Iterator[PrismMock]:
    yield from _serve(lambda: shared_spec_path("azure-devops-git"), transform=azure_devops_fixes)


@pytest.fixture(scope="session")
def prism_azure_devops_hooks() -> Iterator[PrismMock]:
    yield from _serve(lambda: shared_spec_path("azure-devops-hooks"), transform=azure_devops_fixes)


@pytest.fixture(scope="session")
def prism_jira_platform() -> Iterator[PrismMock]:
    yield from _serve(lambda: shared_spec_path("jira-platform"), transform=allow_connect_jwt)


@pytest.fixture(scope="session")
def prism_jira_software() -> Iterator[PrismMock]:
    # The description lists /devinfo/0.10/bulk for what Jira serves at /rest/devinfo/0.10/bulk.
    yield from _serve(lambda: shared_spec_path("jira-software"), base_path="/rest", transform=allow_connect_jwt)


# --------------------------------------------------------------------------- GitHub on loopback

# What the GitHub connector calls to check a token, list repositories, index one (branches,
# pull requests over REST when GraphQL -- not in the REST description -- answers 404) and
# register a webhook. Everything else is a 404 from Prism, as an unknown route would be.
GITHUB_LOOPBACK_PATHS = (
    "/user",
    "/user/repos",
    "/orgs/{org}/repos",
    "/rate_limit",
    "/repos/{owner}/{repo}",
    "/repos/{owner}/{repo}/branches",
    "/repos/{owner}/{repo}/pulls",
    "/repos/{owner}/{repo}/hooks",
    "/repos/{owner}/{repo}/hooks/{hook_id}",
)
GITHUB_EXAMPLE_REPOSITORY = "octocat/Hello-World"  # the repository every example in the description names


@dataclass(frozen=True)
class GitHubOnLoopback:
    """Prism serving GitHub's description whose repositories clone from a real loopback repository."""

    mock: PrismMock
    clone_url: str  # what every repository example's ``clone_url`` says now
    repository: Path  # the bare repository behind it (tests.support.git_server.DEFAULT_HISTORY)

    @property
    def base_url(self) -> str:
        return self.mock.base_url


def clone_from(clone_url: str) -> Callable[[dict[str, Any]], None]:
    """A transform for GitHub's description: every ``clone_url`` in its examples becomes
    ``clone_url`` (a string still: values change, shapes do not), and list responses lose
    their ``Link`` header (its example points at page 2 of 5 on api.github.com; GitHub sends
    the header only when there is another page, and one page is what the examples hold)."""

    def point(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "clone_url" and isinstance(value, str):
                    node[key] = clone_url
                else:
                    point(value)
        elif isinstance(node, list):
            for value in node:
                point(value)

    def transform(doc: dict[str, Any]) -> None:
        accept_github_media_types(doc)
        point(doc.get("components", {}).get("examples"))
        point(doc.get("paths"))
        for item in doc.get("paths", {}).values():
            for op in item.values():
                for response in (op.get("responses") or {}).values() if isinstance(op, dict) else ():
                    headers = response.get("headers") if isinstance(response, dict) else None
                    if isinstance(headers, dict):
                        for name in [n for n in headers if n.lower() == "link"]:
                            del headers[name]

    return transform


@pytest.fixture(scope="session")
def prism_github_loopback(open_git_server: GitHttpServer) -> Iterator[GitHubOnLoopback]:
    """GitHub's own description (pruned to :data:`GITHUB_LOOPBACK_PATHS`, so it starts in a
    second or two) whose ``octocat/Hello-World`` clones over HTTP from ``open_git_server``:
    a wizard or an index run against it finishes for real, and nothing leaves 127.0.0.1."""
    name = "github-octocat-Hello-World-" + secrets.token_hex(3)
    path = open_git_server.add_repo(name, make_repo)
    clone_url = open_git_server.url_for(name)
    for mock in _serve(
        github_spec_path, paths=GITHUB_LOOPBACK_PATHS, transform=clone_from(clone_url), timeout=GITHUB_TIMEOUT
    ):
        yield GitHubOnLoopback(mock, clone_url, path)
