"""Links to a commit or a branch on the host's web UI, built from the repository's ``web_url``.

The indexer stores one per commit and branch row, so the issue panel never calls a host
to render a link. Pure: no I/O. ``None`` when the provider has no stable page for it
(plain git, Gerrit without a known browser) or the repository has no http(s) web URL:
a link we are unsure of is worse than none.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote, urlsplit, urlunsplit

from connect_app.hosts.base import ProviderId

MAX_URL_LENGTH = 2048  # the url columns' size


def _path(name: str) -> str:
    """A branch name inside a URL path: '/' kept (hosts show ``feature/x`` that way), the rest encoded."""
    return quote(name, safe="/")


def _query(value: str) -> str:
    return quote(value, safe="")


def _base(web_url: str | None) -> str | None:
    """The repository page without a trailing slash; only http(s) URLs (never ``javascript:``)."""
    if not web_url:
        return None
    parts = urlsplit(web_url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    netloc = parts.netloc.rpartition("@")[2]  # Azure's remoteUrl carries "org@": no user info in links
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def _suffix(base: str, path: str, query: str = "") -> str:
    """``base`` + ``path`` (+ ``query``), keeping a query that ``base`` already carries."""
    parts = urlsplit(base)
    joined = "&".join(q for q in (query, parts.query) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path + path, joined, ""))


def _strip(base: str, tail: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.removesuffix(tail), parts.query, ""))


UrlBuilder = Callable[[str, str], str]

_COMMIT: dict[ProviderId, UrlBuilder] = {
    ProviderId.GITHUB: lambda b, sha: _suffix(b, f"/commit/{sha}"),
    ProviderId.GITHUB_ENTERPRISE: lambda b, sha: _suffix(b, f"/commit/{sha}"),
    ProviderId.GITLAB: lambda b, sha: _suffix(b, f"/-/commit/{sha}"),
    ProviderId.GITLAB_SELF_MANAGED: lambda b, sha: _suffix(b, f"/-/commit/{sha}"),
    ProviderId.BITBUCKET_CLOUD: lambda b, sha: _suffix(b, f"/commits/{sha}"),
    # Data Center's repository link is ".../repos/<slug>/browse".
    ProviderId.BITBUCKET_DATACENTER: lambda b, sha: _suffix(_strip(b, "/browse"), f"/commits/{sha}"),
    ProviderId.AZURE_DEVOPS: lambda b, sha: _suffix(b, f"/commit/{sha}"),
    ProviderId.AZURE_DEVOPS_SERVER: lambda b, sha: _suffix(b, f"/commit/{sha}"),
    # The console's repository page is ".../repositories/<name>/browse?region=<r>".
    ProviderId.AWS_CODECOMMIT: lambda b, sha: _suffix(_strip(b, "/browse"), f"/commit/{sha}"),
}

_BRANCH: dict[ProviderId, UrlBuilder] = {
    ProviderId.GITHUB: lambda b, name: _suffix(b, f"/tree/{_path(name)}"),
    ProviderId.GITHUB_ENTERPRISE: lambda b, name: _suffix(b, f"/tree/{_path(name)}"),
    ProviderId.GITLAB: lambda b, name: _suffix(b, f"/-/tree/{_path(name)}"),
    ProviderId.GITLAB_SELF_MANAGED: lambda b, name: _suffix(b, f"/-/tree/{_path(name)}"),
    ProviderId.BITBUCKET_CLOUD: lambda b, name: _suffix(b, f"/branch/{_path(name)}"),
    ProviderId.BITBUCKET_DATACENTER: lambda b, name: _suffix(
        _strip(b, "/browse"), "/browse", f"at={_query('refs/heads/' + name)}"
    ),
    ProviderId.AZURE_DEVOPS: lambda b, name: _suffix(b, "", f"version=GB{_query(name)}"),
    ProviderId.AZURE_DEVOPS_SERVER: lambda b, name: _suffix(b, "", f"version=GB{_query(name)}"),
    ProviderId.AWS_CODECOMMIT: lambda b, name: _suffix(b, f"/refs/heads/{_path(name)}"),
}


def _build(table: dict[ProviderId, UrlBuilder], provider: str, web_url: str | None, value: str) -> str | None:
    try:
        builder = table.get(ProviderId(provider))
    except ValueError:
        return None
    base = _base(web_url)
    if builder is None or base is None or not value:
        return None
    url = builder(base, value)
    return url if len(url) <= MAX_URL_LENGTH else None


def commit_url(provider: str, web_url: str | None, sha: str) -> str | None:
    """The page of commit ``sha`` (a full sha: it goes into the URL as is)."""
    return _build(_COMMIT, provider, web_url, sha)


def branch_url(provider: str, web_url: str | None, name: str) -> str | None:
    """The page of branch ``name`` (short name, e.g. ``feature/ABC-1``), URL-encoded."""
    return _build(_BRANCH, provider, web_url, name)


def commit_url_prefix(provider: str, web_url: str | None) -> tuple[str, str] | None:
    """(prefix, suffix) such that ``prefix + sha + suffix == commit_url(...)``, or None.

    Lets the indexer build 200,000 commit URLs by concatenation instead of re-parsing the base each time.
    """
    marker = "0" * 40
    url = commit_url(provider, web_url, marker)
    if url is None:
        return None
    prefix, _, suffix = url.partition(marker)
    return prefix, suffix
