"""How each host says "there is another page", as small strategy objects, and the
loop that walks the pages.

``HostHttpClient.paginate`` calls :func:`walk_pages`, which asks a strategy for the
first request, fetches it, and asks again with the response until the strategy answers
None. A provider picks one constant below; nothing here knows which host it talks to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from requests.utils import parse_header_links

from connect_app.errors import HostError

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


class FetchedPage(Protocol):
    """What :func:`walk_pages` needs of a response (``HttpResponse`` has it)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def body(self) -> bytes: ...

    def json(self) -> Any: ...


def walk_pages(
    fetch: Callable[[PageRequest], FetchedPage],
    first: PageRequest,
    strategy: Pagination,
    items: Callable[[Any], Iterable[Any]],
    *,
    host: str,
    max_pages: int | None = None,
) -> Iterator[Any]:
    """Yield the items of ``first`` and of every page after it, fetched lazily.

    Refuses a page asked for twice (a loop of ``next`` links) and a page whose body
    repeats the one before (a host that ignores the offset or skip would otherwise be
    paged forever)."""
    page: PageRequest | None = first
    seen: set[str] = set()
    previous: bytes | None = None
    fetched = 0
    while page is not None and (max_pages is None or fetched < max_pages):
        marker = f"{page.target}?{sorted((page.params or {}).items())}"
        if marker in seen:
            raise HostError(f"{host} sent the same page twice", code="host_bad_response")
        seen.add(marker)
        response = fetch(page)
        fetched += 1
        body = response.json()
        found = list(items(body))
        if found and response.body == previous:
            raise HostError(f"{host} sent the same page twice", code="host_bad_response")
        previous = response.body
        yield from found
        page = strategy.next_page(page, response.headers, body, len(found))


def items_at(body: Any, key: str | None, host: str) -> list[Any]:
    """The list at ``body[key]``, or the body itself when ``key`` is None."""
    value = body.get(key) if key and isinstance(body, dict) else body
    if not isinstance(value, list):
        raise HostError(f"{host} answered with an unexpected page shape", code="host_bad_response")
    return value


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

    items_key: str | None = "values"

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        url = body.get("next") if isinstance(body, dict) else None
        return PageRequest(url) if isinstance(url, str) and url else None


class StartLimitPagination(_FirstAsGiven):
    """Bitbucket Data Center: ``{"values": [...], "isLastPage": false, "nextPageStart": 25}``."""

    items_key: str | None = "values"

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

    items_key: str | None = "value"

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        token = (_header(headers, "x-ms-continuationtoken") or "").strip()
        if not token:
            return None
        return PageRequest(current.target, _with(current.params, continuationToken=token))


@dataclass(frozen=True)
class TopSkipPagination:
    """A page size and an offset in the query: Azure DevOps ``$top``/``$skip`` (the
    defaults), Gerrit ``n``/``S``. A full page means there may be another; so does
    ``more_flag`` set to true on the last item (Gerrit's ``_more_changes``)."""

    page_size: int = 100
    items_key: str | None = "value"
    top_param: str = "$top"
    skip_param: str = "$skip"
    more_flag: str | None = None

    def first(self, path: str, params: Params | None) -> PageRequest:
        return PageRequest(path, _with(params, **{self.top_param: self.page_size, self.skip_param: 0}))

    def next_page(
        self, current: PageRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PageRequest | None:
        if item_count < self.page_size and not self._flagged_more(body):
            return None
        skip = int((current.params or {}).get(self.skip_param, 0)) + item_count
        return PageRequest(current.target, _with(current.params, **{self.skip_param: skip}))

    def _flagged_more(self, body: Any) -> bool:
        if self.more_flag is None:
            return False
        items = body.get(self.items_key) if self.items_key and isinstance(body, dict) else body
        last = items[-1] if isinstance(items, list) and items else None
        return isinstance(last, dict) and last.get(self.more_flag) is True


# Typed as the Protocol, so callers pass them as ``strategy=`` without a cast.
SINGLE_PAGE: Pagination = SinglePage()
LINK_HEADER: Pagination = LinkHeaderPagination()
GITLAB_NEXT_PAGE: Pagination = NextPageHeaderPagination()
BITBUCKET_CLOUD: Pagination = BodyNextUrlPagination()
BITBUCKET_DC: Pagination = StartLimitPagination()
AZURE_CONTINUATION: Pagination = ContinuationTokenPagination()
AZURE_TOP_SKIP: Pagination = TopSkipPagination()
