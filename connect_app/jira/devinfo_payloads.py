"""Development information payloads for ``POST /rest/devinfo/0.10/bulk``. Pure: no I/O, no app.

Every limit of Jira Software's published description (``storeDevelopmentInformation`` in
shared/data/specs/jira-software.openapi.json) is enforced here, so a request built by this
module is never refused for its shape:

===========================================  ==================================================
Limit (the description's words)              How
===========================================  ==================================================
repositories: ``maxItems: 100``              :func:`pack` starts a new request
"Maximum number of entities across all       :func:`pack` (``DevinfoLimits.max_entities``)
repositories is 1000"
"Maximum number of commits / branches /      :func:`pack` keeps *all* entities of one repository
pull requests is 400" (per repository)       in one request to 400 (stricter than per type)
issueKeys ``minItems: 1, maxItems: 100``     entities without keys are never built; branches and
                                             pull requests with more keys are split into sibling
                                             entities (``<id>~k1``, ``<id>~k2``...; each issue
                                             sees one), commits (whose id must be the hash)
                                             keep the first 100 and report the rest
                                             (:class:`KeyOverflow`), never silently
message / title ``maxLength: 1024``,         :func:`clip`, counted in UTF-16 code units (Jira is
names, displayId, author fields 255, branch  Java), ending in "…"
name 512, source/destination branch 255
URLs ``maxLength: 2000``                     a longer URL is replaced by the repository's URL
files ``maxItems: 10``                       we store only a count: ``fileCount``, no ``files``
ids: ``[A-Za-z0-9~.\\-_]``, max 1024          :func:`encode_id` (reversible, ``~`` + hex of each
                                             UTF-8 byte of any other character); longer than
                                             1016 -> ``~h`` + sha256; the name stays in ``name``
properties: at most 5, keys and values       one property, ``integrationId``
<= 255, no key starting with ``_`` or with
``:``
updateSequenceId (int64, "ignored when       the entity's own time in epoch milliseconds
lower than what is stored")                  (commit: committed_at, branch: when its head
                                             moved, pull request: updated on the host), never
                                             the wall clock: a redelivery cannot move data back
(undocumented body size; 413 "submit fewer   ``DevinfoLimits.max_body_bytes`` (2 MB by default)
entities")                                   and :meth:`DevinfoRequest.halves` for a 413
===========================================  ==================================================
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# -- published limits
MAX_REPOSITORIES = 100
MAX_ENTITIES = 1000
MAX_ENTITIES_PER_REPOSITORY = 400
MAX_ISSUE_KEYS = 100
MAX_ID_LENGTH = 1024
MAX_MESSAGE = 1024  # commit message, pull request title
MAX_NAME = 255  # repository name, author name/email, displayId, PR source/destination branch
MAX_BRANCH_NAME = 512
MAX_URL = 2000
MAX_PROPERTIES = 5
MAX_PROPERTY_LENGTH = 255
DEFAULT_MAX_BODY_BYTES = 2_000_000  # not published; 413 splits further

SIBLING_MARK = "~k"  # <id>~k1: the second hundred of an entity's issue keys
HASHED_MARK = "~h"  # ~h<sha256>: an id whose encoding is too long
_ID_ROOM = MAX_ID_LENGTH - 8  # room left for a sibling suffix
_ID_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_")
_ID_VALID = re.compile(r"[A-Za-z0-9~.\-_]{1,1024}", re.ASCII)
_ESCAPE = re.compile(r"~([0-9A-F]{2})")
_SIBLING = re.compile(r"~k[0-9]+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNKNOWN_EMAIL = "unknown@users.noreply.invalid"  # RFC 2606 ".invalid": never a Jira user's address


class EntityKind(StrEnum):
    """The request body's array names."""

    COMMIT = "commits"
    BRANCH = "branches"
    PULL_REQUEST = "pullRequests"


@dataclass(frozen=True)
class DevinfoLimits:
    max_repositories: int = MAX_REPOSITORIES
    max_entities: int = MAX_ENTITIES
    max_entities_per_repository: int = MAX_ENTITIES_PER_REPOSITORY
    max_issue_keys: int = MAX_ISSUE_KEYS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_repositories <= MAX_REPOSITORIES:
            raise ValueError("max_repositories must be 1..100")
        if not 1 <= self.max_entities <= MAX_ENTITIES:
            raise ValueError("max_entities must be 1..1000")
        if not 1 <= self.max_entities_per_repository <= MAX_ENTITIES_PER_REPOSITORY:
            raise ValueError("max_entities_per_repository must be 1..400")
        if not 1 <= self.max_issue_keys <= MAX_ISSUE_KEYS:
            raise ValueError("max_issue_keys must be 1..100")


# ----------------------------------------------------------------------------- values


def utf16_length(text: str) -> int:
    """Length as Java counts it (UTF-16 code units): what Jira's maxLength means."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-16 code units, ending in "…" when cut (never half a pair)."""
    if utf16_length(text) <= limit:
        return text
    budget, used, out = limit - 1, 0, []
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > budget:
            break
        out.append(ch)
        used += width
    return "".join(out) + "…"


def update_sequence_id(when: datetime) -> int:
    """Epoch milliseconds of ``when`` (UTC; naive values are taken as UTC), never negative."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, (when - _EPOCH) // timedelta(milliseconds=1))


def iso_utc(when: datetime) -> str:
    """``2024-05-01T10:20:30.000Z``: the "UTC ISO 8601" the description asks for."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_valid_id(value: str) -> bool:
    return _ID_VALID.fullmatch(value) is not None


def encode_id(value: str) -> str:
    """An entity id of Jira's alphabet for any name: letters, digits, ``.``, ``-`` and ``_`` as
    they are, every other character as ``~`` + the upper-case hex of its UTF-8 bytes
    (``feature/ABC-1`` -> ``feature~2FABC-1``). Reversible (:func:`decode_id`) and injective:
    ``~`` itself is escaped. An encoding longer than 1016 characters becomes ``~h`` + the
    sha256 of the name (not reversible; Jira keeps the name in ``name``)."""
    parts: list[str] = []
    for ch in value:
        if ch in _ID_SAFE:
            parts.append(ch)
        else:
            parts.extend(f"~{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    encoded = "".join(parts)
    if not encoded or len(encoded) > _ID_ROOM:
        return HASHED_MARK + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return encoded


def decode_id(entity_id: str) -> str | None:
    """The name behind an id made by :func:`encode_id` (a sibling suffix is ignored); ``None``
    for a hashed id."""
    entity_id = _SIBLING.sub("", entity_id)
    if entity_id.startswith(HASHED_MARK):
        return None
    raw = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(entity_id):
        raw += entity_id[pos : match.start()].encode("ascii")
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw += entity_id[pos:].encode("ascii")
    return raw.decode("utf-8", "surrogatepass")


def sibling_id(base: str, chunk: int) -> str:
    return base if chunk == 0 else f"{base}{SIBLING_MARK}{chunk}"


def safe_url(url: str | None) -> str | None:
    """An http(s) URL without user info, query or fragment, or None (``javascript:`` etc.)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))


def repository_url(web_url: str | None, clone_url: str) -> str:
    """What Jira links the repository to: its web page, else its clone URL without credentials."""
    for candidate in (safe_url(web_url), safe_url(clone_url)):
        if candidate and len(candidate) <= MAX_URL:
            return candidate
    raw = clone_url.strip()
    if "://" in raw:  # ssh://user@host/x.git: drop the user
        scheme, _, rest = raw.partition("://")
        authority, slash, path = rest.partition("/")
        raw = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    elif "@" in raw.split(":", 1)[0]:  # scp-like git@host:path
        raw = raw.split("@", 1)[1]
    return clip(raw, MAX_URL)


def _url(url: str | None, fallback: str) -> str:
    return url if url and len(url) <= MAX_URL and safe_url(url) else fallback


def _author(name: str | None, email: str | None, username: str | None = None) -> dict[str, str]:
    author = {
        "name": clip((name or "").strip() or (username or "").strip() or "Unknown", MAX_NAME),
        "email": clip((email or "").strip(), MAX_NAME) or UNKNOWN_EMAIL,
    }
    if username:
        author["username"] = clip(username, MAX_NAME)
    return author


def chunk_keys(keys: Sequence[str], size: int = MAX_ISSUE_KEYS) -> list[list[str]]:
    """Issue keys, each once (first occurrence kept), in chunks of at most ``size``."""
    unique = list(dict.fromkeys(keys))
    return [unique[i : i + size] for i in range(0, len(unique), size)]


# ----------------------------------------------------------------------------- our rows, as plain values


@dataclass(frozen=True)
class RepositoryInfo:
    id: int
    name: str
    url: str  # from repository_url()
    updated_at: datetime
    provider: str = ""

    @property
    def devinfo_id(self) -> str:
        return str(self.id)

    def header(self) -> dict[str, Any]:
        return {
            "id": self.devinfo_id,
            "name": clip(self.name, MAX_NAME),
            "url": self.url,
            "updateSequenceId": update_sequence_id(self.updated_at),
        }


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    message: str
    author_name: str
    author_email: str
    authored_at: datetime
    committed_at: datetime
    files_changed: int = 0
    parent_count: int = 1
    url: str | None = None


@dataclass(frozen=True)
class BranchInfo:
    name: str
    head_sha: str
    updated_at: datetime
    url: str | None = None
    head: CommitInfo | None = None  # the head commit when it is stored


@dataclass(frozen=True)
class PullRequestInfo:
    external_id: str
    title: str
    state: str
    source_branch: str
    target_branch: str
    url: str
    updated_on_host: datetime
    author: str | None = None
    display_prefix: str = "#"  # "!" for GitLab merge requests
    source_branch_url: str | None = None
    target_branch_url: str | None = None


@dataclass(frozen=True)
class KeyOverflow:
    """Issue keys beyond the 100 a commit may carry: reported, not sent."""

    kind: EntityKind
    entity_id: str
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class Entity:
    kind: EntityKind
    id: str
    body: dict[str, Any]
    source: int = 0  # our row id (progress bookkeeping), not sent
    live: bool = False  # may fire Jira's transitions / smart commits (preventTransitions false)

    @property
    def size(self) -> int:
        return len(json.dumps(self.body))


# ----------------------------------------------------------------------------- entities


def commit_body(commit: CommitInfo, issue_keys: Sequence[str], *, fallback_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": commit.sha,
        "issueKeys": list(issue_keys),
        "updateSequenceId": update_sequence_id(commit.committed_at),
        "hash": commit.sha,
        "displayId": commit.sha[:7],
        "message": clip(commit.message, MAX_MESSAGE),
        "author": _author(commit.author_name, commit.author_email),
        "authorTimestamp": iso_utc(commit.authored_at),
        "fileCount": max(0, commit.files_changed),
        "url": _url(commit.url, fallback_url),
    }
    if commit.parent_count > 1:
        body["flags"] = ["MERGE_COMMIT"]
    return body


def commit_entity(
    commit: CommitInfo, issue_keys: Sequence[str], *, fallback_url: str, limits: DevinfoLimits = DevinfoLimits()
) -> tuple[Entity | None, KeyOverflow | None]:
    """The commit with its first 100 keys (its id must be the hash: it cannot be split)."""
    chunks = chunk_keys(issue_keys, limits.max_issue_keys)
    if not chunks or not is_valid_id(commit.sha):
        return None, None
    overflow = None
    if len(chunks) > 1:
        dropped = tuple(k for chunk in chunks[1:] for k in chunk)
        overflow = KeyOverflow(EntityKind.COMMIT, commit.sha, dropped)
    return Entity(EntityKind.COMMIT, commit.sha, commit_body(commit, chunks[0], fallback_url=fallback_url)), overflow


def _head_body(branch: BranchInfo, issue_keys: Sequence[str], fallback_url: str) -> dict[str, Any]:
    if branch.head is not None and branch.head.sha == branch.head_sha:
        return commit_body(branch.head, issue_keys, fallback_url=fallback_url)
    return {  # the head commit is not stored (yet): what we know of it
        "id": branch.head_sha,
        "issueKeys": list(issue_keys),
        "updateSequenceId": update_sequence_id(branch.updated_at),
        "hash": branch.head_sha,
        "displayId": branch.head_sha[:7],
        "message": "",
        "author": _author(None, None),
        "authorTimestamp": iso_utc(branch.updated_at),
        "fileCount": 0,
        "url": fallback_url,
    }


def branch_entities(
    branch: BranchInfo, issue_keys: Sequence[str], *, fallback_url: str, limits: DevinfoLimits = DevinfoLimits()
) -> list[Entity]:
    """One entity per 100 issue keys (ids ``<id>``, ``<id>~k1``...), each with the branch's head."""
    base = encode_id(branch.name)
    url = _url(branch.url, fallback_url)
    entities = []
    for n, chunk in enumerate(chunk_keys(issue_keys, limits.max_issue_keys)):
        entity_id = sibling_id(base, n)
        body = {
            "id": entity_id,
            "issueKeys": chunk,
            "updateSequenceId": update_sequence_id(branch.updated_at),
            "name": clip(branch.name, MAX_BRANCH_NAME),
            "lastCommit": _head_body(branch, chunk, url),
            "url": url,
        }
        entities.append(Entity(EntityKind.BRANCH, entity_id, body))
    return entities


PULL_REQUEST_STATUS = {"OPEN": "OPEN", "MERGED": "MERGED", "DECLINED": "DECLINED", "CLOSED": "DECLINED"}


def pull_request_entities(
    pr: PullRequestInfo, issue_keys: Sequence[str], *, fallback_url: str, limits: DevinfoLimits = DevinfoLimits()
) -> list[Entity]:
    base = encode_id(pr.external_id)
    entities = []
    for n, chunk in enumerate(chunk_keys(issue_keys, limits.max_issue_keys)):
        entity_id = sibling_id(base, n)
        body: dict[str, Any] = {
            "id": entity_id,
            "issueKeys": chunk,
            "updateSequenceId": update_sequence_id(pr.updated_on_host),
            "status": PULL_REQUEST_STATUS.get(pr.state.upper(), "UNKNOWN"),
            "title": clip(pr.title or f"{pr.display_prefix}{pr.external_id}", MAX_MESSAGE),
            "author": _author(pr.author, None, pr.author),
            "commentCount": 0,  # not stored; Jira requires the field
            "sourceBranch": clip(pr.source_branch, MAX_NAME),
            "destinationBranch": clip(pr.target_branch, MAX_NAME),
            "lastUpdate": iso_utc(pr.updated_on_host),
            "displayId": clip(f"{pr.display_prefix}{pr.external_id}", MAX_NAME),
            "url": _url(pr.url, fallback_url),
        }
        for key, url in (("sourceBranchUrl", pr.source_branch_url), ("destinationBranchUrl", pr.target_branch_url)):
            if url and len(url) <= MAX_URL and safe_url(url):
                body[key] = url
        entities.append(Entity(EntityKind.PULL_REQUEST, entity_id, body))
    return entities


# ----------------------------------------------------------------------------- requests


def properties_for(**values: str) -> dict[str, str]:
    """The ``properties`` we tag every push with (checked against the published rules)."""
    if len(values) > MAX_PROPERTIES:
        raise ValueError("at most 5 properties")
    for key, value in values.items():
        if key.startswith("_") or ":" in key or not 0 < len(key) <= MAX_PROPERTY_LENGTH:
            raise ValueError(f"invalid property key {key!r}")
        if len(value) > MAX_PROPERTY_LENGTH:
            raise ValueError(f"property {key!r} is too long")
    return dict(values)


@dataclass
class DevinfoRequest:
    """One ``POST /bulk`` body and the entities in it."""

    repositories: list[tuple[Mapping[str, Any], list[Entity]]]
    prevent_transitions: bool
    properties: Mapping[str, str] = field(default_factory=dict)
    provider_metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def entities(self) -> list[Entity]:
        return [e for _, entities in self.repositories for e in entities]

    @property
    def entity_count(self) -> int:
        return sum(len(entities) for _, entities in self.repositories)

    def body(self) -> dict[str, Any]:
        repositories = []
        for header, entities in self.repositories:
            repo = dict(header)
            for kind in EntityKind:
                items = [e.body for e in entities if e.kind is kind]
                if items:
                    repo[kind.value] = items
            repositories.append(repo)
        body: dict[str, Any] = {"repositories": repositories, "preventTransitions": self.prevent_transitions}
        if self.properties:
            body["properties"] = dict(self.properties)
        if self.provider_metadata:
            body["providerMetadata"] = dict(self.provider_metadata)
        return body

    def halves(self) -> tuple[DevinfoRequest, DevinfoRequest]:
        """The same entities in two requests (for a 413); needs at least two entities."""
        flat = [(header, e) for header, entities in self.repositories for e in entities]
        if len(flat) < 2:
            raise ValueError("a request of one entity cannot be split")
        middle = len(flat) // 2

        def regroup(part: list[tuple[Mapping[str, Any], Entity]]) -> DevinfoRequest:
            grouped: dict[str, tuple[Mapping[str, Any], list[Entity]]] = {}
            for header, entity in part:
                grouped.setdefault(str(header["id"]), (header, []))[1].append(entity)
            return DevinfoRequest(
                list(grouped.values()), self.prevent_transitions, self.properties, self.provider_metadata
            )

        return regroup(flat[:middle]), regroup(flat[middle:])


def pack(
    repositories: Iterable[tuple[Mapping[str, Any], Sequence[Entity]]],
    *,
    prevent_transitions: bool,
    properties: Mapping[str, str] | None = None,
    provider_metadata: Mapping[str, str] | None = None,
    limits: DevinfoLimits = DevinfoLimits(),
) -> list[DevinfoRequest]:
    """Requests holding every entity once, in order, each within ``limits``.

    A repository's entities may span several requests (its header repeats in each). Duplicate
    entity ids within one repository are a caller error (``ValueError``): Jira refuses them.
    """
    props = dict(properties or {})
    meta = dict(provider_metadata or {})
    base_size = len(json.dumps({"repositories": [], "preventTransitions": prevent_transitions})) + len(
        json.dumps({"properties": props, "providerMetadata": meta})
    )
    requests: list[DevinfoRequest] = []
    current: dict[str, tuple[Mapping[str, Any], list[Entity]]] = {}
    count = size = 0

    def flush() -> None:
        nonlocal current, count, size
        if count:
            requests.append(DevinfoRequest(list(current.values()), prevent_transitions, props, meta))
        current, count, size = {}, 0, base_size

    size = base_size
    for header, entities in repositories:
        repo_id = str(header["id"])
        header_size = len(json.dumps(header)) + 40
        seen: set[tuple[EntityKind, str]] = set()
        for entity in entities:
            if (entity.kind, entity.id) in seen:
                raise ValueError(f"duplicate {entity.kind.value} id {entity.id!r} in repository {repo_id}")
            seen.add((entity.kind, entity.id))
            entity_size = entity.size + 2
            in_request = current.get(repo_id)
            extra = entity_size + (0 if in_request else header_size)
            if count and (
                count + 1 > limits.max_entities
                or (in_request is None and len(current) + 1 > limits.max_repositories)
                or (in_request is not None and len(in_request[1]) + 1 > limits.max_entities_per_repository)
                or size + extra > limits.max_body_bytes
            ):
                flush()
                in_request = None
                extra = entity_size + header_size
            if in_request is None:
                in_request = current[repo_id] = (header, [])
            in_request[1].append(entity)
            count += 1
            size += extra
    flush()
    return requests
