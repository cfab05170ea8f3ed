"""How each host says "there is another page", as small strategy objects.

``HostHttpClient.paginate`` asks a strategy for the first request, fetches it,
and asks again with the response until the strategy answers None. A provider
picks one constant below; nothing here knows which host it talks to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from requests.utils import parse_header_links

Params = Mapping[str, Any]


@dataclass(frozen=True)
class PageRequest:
    target: str  # a path under the client's base URL, or an absolute URL from the host
    params: Params | None = None


class Pagination(Protocol):
    @property
    def items_key(self) -> str | None:
        """Where the items are in a page body; None: the body is the list."""
        ...

    def first(self, path: str, params: Params | None) -> PageRequest: ...

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None: ...


def _with(params: Params | None, **changes: Any) -> dict[str, Any]:
    merged = dict(params or {})
    merged.update(changes)
    return merged


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


class _FirstAsGiven:
    items_key: str | None = None

    def first(self, path: str, params: Params | None) -> PageRequest:
        return PageRequest(path, params)


class SinglePage(_FirstAsGiven):
    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        return None


class LinkHeaderPagination(_FirstAsGiven):
    """RFC 8288 ``Link: <url>; rel="next"`` (GitHub, GitLab offset and keyset)."""

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        value = _header(headers, "link")
        if not value:
            return None
        for link in parse_header_links(value):
            if "next" in str(link.get("rel", "")).split() and link.get("url"):
                return PageRequest(str(link["url"]))
        return None


class NextPageHeaderPagination(_FirstAsGiven):
    """GitLab ``X-Next-Page: 3`` (empty on the last page) with a ``page`` parameter."""

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        value = (_header(headers, "x-next-page") or "").strip()
        if not value.isdigit():
            return None
        return PageRequest(current.target, _with(current.params, page=int(value)))


class BodyNextUrlPagination(_FirstAsGiven):
    """Bitbucket Cloud: ``{"values": [...], "next": "https://..."}``."""

    items_key = "values"

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        url = body.get("next") if isinstance(body, dict) else None
        return PageRequest(url) if isinstance(url, str) and url else None


class StartLimitPagination(_FirstAsGiven):
    """Bitbucket Data Center: ``{"values": [...], "isLastPage": false, "nextPageStart": 25}``."""

    items_key = "values"

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        if not isinstance(body, dict) or body.get("isLastPage", True):
            return None
        start = body.get("nextPageStart")
        if not isinstance(start, int) or isinstance(start, bool):
            return None
        return PageRequest(current.target, _with(current.params, start=start))


class ContinuationTokenPagination(_FirstAsGiven):
    """Azure DevOps: ``x-ms-continuationtoken`` header, sent back as ``continuationToken``."""

    items_key = "value"

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        token = (_header(headers, "x-ms-continuationtoken") or "").strip()
        if not token:
            return None
        return PageRequest(current.target, _with(current.params, continuationToken=token))


@dataclass(frozen=True)
class TopSkipPagination:
    """Azure DevOps ``$top``/``$skip``: a full page means there may be another."""

    page_size: int = 100
    items_key: str | None = "value"

    def first(self, path: str, params: Params | None) -> PageRequest:
        return PageRequest(path, _with(params, **{"$top": self.page_size, "$skip": 0}))

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        if item_count < self.page_size:
            return None
        skip = int((current.params or {}).get("$skip", 0)) + item_count
        return PageRequest(current.target, _with(current.params, **{"$skip": skip}))


SINGLE_PAGE = SinglePage()
LINK_HEADER = LinkHeaderPagination()
GITLAB_NEXT_PAGE = NextPageHeaderPagination()
BITBUCKET_CLOUD = BodyNextUrlPagination()
BITBUCKET_DC = StartLimitPagination()
AZURE_CONTINUATION = ContinuationTokenPagination()
AZURE_TOP_SKIP = TopSkipPagination()
