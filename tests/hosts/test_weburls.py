"""Commit and branch links on each host's web UI, built from the repository's web URL."""

from __future__ import annotations

import pytest

from connect_app.hosts.base import ProviderId
from connect_app.hosts.weburls import branch_url, commit_url, commit_url_prefix

SHA = "0123456789abcdef0123456789abcdef01234567"
BRANCH = "feature/ABC-1 fix#2?&%"

CASES = [
    (
        ProviderId.GITHUB,
        "https://github.com/acme/app",
        f"https://github.com/acme/app/commit/{SHA}",
        "https://github.com/acme/app/tree/feature/ABC-1%20fix%232%3F%26%25",
    ),
    (
        ProviderId.GITHUB_ENTERPRISE,
        "https://ghe.example.com/acme/app/",
        f"https://ghe.example.com/acme/app/commit/{SHA}",
        "https://ghe.example.com/acme/app/tree/feature/ABC-1%20fix%232%3F%26%25",
    ),
    (
        ProviderId.GITLAB,
        "https://gitlab.com/group/sub/app",
        f"https://gitlab.com/group/sub/app/-/commit/{SHA}",
        "https://gitlab.com/group/sub/app/-/tree/feature/ABC-1%20fix%232%3F%26%25",
    ),
    (
        ProviderId.GITLAB_SELF_MANAGED,
        "https://git.example.com/gitlab/group/app",
        f"https://git.example.com/gitlab/group/app/-/commit/{SHA}",
        "https://git.example.com/gitlab/group/app/-/tree/feature/ABC-1%20fix%232%3F%26%25",
    ),
    (
        ProviderId.BITBUCKET_CLOUD,
        "https://bitbucket.org/ws/app",
        f"https://bitbucket.org/ws/app/commits/{SHA}",
        "https://bitbucket.org/ws/app/branch/feature/ABC-1%20fix%232%3F%26%25",
    ),
    (
        ProviderId.BITBUCKET_DATACENTER,
        "https://bb.example.com/projects/P/repos/app/browse",
        f"https://bb.example.com/projects/P/repos/app/commits/{SHA}",
        "https://bb.example.com/projects/P/repos/app/browse?at=refs%2Fheads%2Ffeature%2FABC-1%20fix%232%3F%26%25",
    ),
    (
        ProviderId.AZURE_DEVOPS,
        "https://org@dev.azure.com/org/proj/_git/app",
        f"https://dev.azure.com/org/proj/_git/app/commit/{SHA}",
        "https://dev.azure.com/org/proj/_git/app?version=GBfeature%2FABC-1%20fix%232%3F%26%25",
    ),
    (
        ProviderId.AZURE_DEVOPS_SERVER,
        "https://tfs.example.com/tfs/Coll/proj/_git/app",
        f"https://tfs.example.com/tfs/Coll/proj/_git/app/commit/{SHA}",
        "https://tfs.example.com/tfs/Coll/proj/_git/app?version=GBfeature%2FABC-1%20fix%232%3F%26%25",
    ),
    (
        ProviderId.AWS_CODECOMMIT,
        "https://eu-west-1.console.aws.amazon.com/codesuite/codecommit/repositories/app/browse?region=eu-west-1",
        f"https://eu-west-1.console.aws.amazon.com/codesuite/codecommit/repositories/app/commit/{SHA}?region=eu-west-1",
        "https://eu-west-1.console.aws.amazon.com/codesuite/codecommit/repositories/app/browse/refs/heads/"
        "feature/ABC-1%20fix%232%3F%26%25?region=eu-west-1",
    ),
]


@pytest.mark.parametrize(("provider", "web_url", "commit", "branch"), CASES, ids=[c[0].value for c in CASES])
def test_urls_per_provider(provider: ProviderId, web_url: str, commit: str, branch: str) -> None:
    assert commit_url(provider, web_url, SHA) == commit
    assert branch_url(provider, web_url, BRANCH) == branch
    prefix, suffix = commit_url_prefix(provider, web_url) or ("", "")
    assert prefix + SHA + suffix == commit


def test_every_provider_is_covered_or_deliberately_left_out() -> None:
    covered = {c[0] for c in CASES}
    assert set(ProviderId) - covered == {ProviderId.GERRIT, ProviderId.GIT}


@pytest.mark.parametrize("provider", [ProviderId.GIT, ProviderId.GERRIT])
def test_no_link_where_the_host_has_no_known_page(provider: ProviderId) -> None:
    assert commit_url(provider, "https://git.example.com/r", SHA) is None
    assert branch_url(provider, "https://git.example.com/r", "main") is None
    assert commit_url_prefix(provider, "https://git.example.com/r") is None


@pytest.mark.parametrize(
    "web_url", [None, "", "javascript:alert(1)//", "ftp://x/y", "/relative/path", "https:///nohost"]
)
def test_only_http_web_urls_make_links(web_url: str | None) -> None:
    assert commit_url(ProviderId.GITHUB, web_url, SHA) is None
    assert branch_url(ProviderId.GITHUB, web_url, "main") is None


def test_unknown_provider_and_oversized_urls() -> None:
    assert commit_url("sourcehut", "https://git.sr.ht/~a/b", SHA) is None
    assert branch_url(ProviderId.GITHUB, "https://github.com/a/b", "x" * 3000) is None
    assert branch_url(ProviderId.GITHUB, "https://github.com/a/b", "") is None
