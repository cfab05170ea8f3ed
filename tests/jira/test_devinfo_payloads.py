"""Development information payloads: every published limit of ``storeDevelopmentInformation``
(jira-software.openapi.json) enforced by construction, checked entity by entity and against
the description's own request schema."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connect_app.jira.devinfo_payloads import (
    UNKNOWN_EMAIL,
    BranchInfo,
    CommitInfo,
    DevinfoLimits,
    Entity,
    EntityKind,
    PullRequestInfo,
    RepositoryInfo,
    branch_entities,
    clip,
    commit_entity,
    decode_id,
    encode_id,
    is_valid_id,
    iso_utc,
    pack,
    properties_for,
    pull_request_entities,
    repository_url,
    update_sequence_id,
    utf16_length,
)
from tests.support.prism import shared_spec_path

T0 = datetime(2024, 5, 1, 10, 20, 30, 123000, tzinfo=UTC)
REPO_URL = "https://git.example.com/acme/widgets"


def _commit(sha: str = "a" * 40, **kw: Any) -> CommitInfo:
    values: dict[str, Any] = {
        "sha": sha,
        "message": "ABC-1 fix",
        "author_name": "Jane Doe",
        "author_email": "jane@example.com",
        "authored_at": T0,
        "committed_at": T0 + timedelta(minutes=5),
        "files_changed": 3,
        "parent_count": 1,
        "url": f"{REPO_URL}/commit/{sha}",
    }
    values.update(kw)
    return CommitInfo(**values)


def _keys(n: int) -> list[str]:
    return [f"ABC-{i}" for i in range(1, n + 1)]


@pytest.fixture(scope="module")
def request_schema() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    doc = json.loads(shared_spec_path("jira-software").read_text())
    schema = doc["paths"]["/devinfo/0.10/bulk"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft4Validator(schema)


def _valid(validator: Any, body: dict[str, Any]) -> list[str]:
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(body)]


# ----------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    "name",
    [
        "main",
        "feature/ABC-1-login",
        "release-1.2_x",
        "with space",
        "tilde~name",
        "a~2Fb",
        "ünïcödé/ветка",
        "emoji-😀",
        "refs/heads/x?y=z#w",
        "a" * 300,
    ],
)
def test_ids_are_in_jiras_alphabet_and_reversible(name: str) -> None:
    entity_id = encode_id(name)
    assert is_valid_id(entity_id)
    assert decode_id(entity_id) == name


def test_ids_are_injective_where_a_naive_escape_is_not() -> None:
    names = ["a/b", "a~2Fb", "a~b", "a~7Eb", "~61", "a"]
    ids = [encode_id(n) for n in names]
    assert len(set(ids)) == len(ids)


def test_long_names_are_hashed_and_stay_within_1024_with_a_sibling_suffix() -> None:
    long_name = "ß" * 400  # 2 UTF-8 bytes each -> 2400 characters encoded
    entity_id = encode_id(long_name)
    assert entity_id.startswith("~h") and len(entity_id) == 66
    assert decode_id(entity_id) is None
    assert encode_id(long_name) == entity_id  # stable
    assert len(encode_id("x" * 1016)) == 1016
    assert encode_id("x" * 1017).startswith("~h")
    assert decode_id(encode_id("feature/x") + "~k3") == "feature/x"


# ----------------------------------------------------------------------------- values


def test_clip_counts_utf16_code_units_and_never_splits_a_pair() -> None:
    assert clip("short", 10) == "short"
    assert clip("x" * 1024, 1024) == "x" * 1024
    cut = clip("x" * 1025, 1024)
    assert len(cut) == 1024 and cut.endswith("…")
    emoji = "😀" * 600  # 1200 UTF-16 units
    cut = clip(emoji, 1024)
    assert utf16_length(cut) <= 1024 and cut.endswith("…")
    assert all(ch in "😀…" for ch in cut)


def test_update_sequence_ids_are_the_entitys_epoch_millis() -> None:
    assert update_sequence_id(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert update_sequence_id(T0) == 1714558830123
    assert update_sequence_id(T0.replace(tzinfo=None)) == 1714558830123
    assert update_sequence_id(datetime(1960, 1, 1, tzinfo=UTC)) == 0
    assert update_sequence_id(T0 + timedelta(milliseconds=1)) == update_sequence_id(T0) + 1
    assert iso_utc(T0) == "2024-05-01T10:20:30.123Z"


def test_repository_urls_never_carry_credentials() -> None:
    assert repository_url("https://git.example.com/acme/w", "x") == "https://git.example.com/acme/w"
    assert repository_url(None, "https://bob:s3cret@git.example.com/w.git") == "https://git.example.com/w.git"
    assert repository_url("javascript:alert(1)", "ssh://git@host:22/w.git") == "ssh://host:22/w.git"
    assert repository_url(None, "git@github.com:acme/w.git") == "github.com:acme/w.git"


def test_properties_follow_the_published_rules() -> None:
    assert properties_for(integrationId="12") == {"integrationId": "12"}
    with pytest.raises(ValueError):
        properties_for(_private="x")
    with pytest.raises(ValueError):
        properties_for(**{"a:b": "x"})
    with pytest.raises(ValueError):
        properties_for(a="1", b="2", c="3", d="4", e="5", f="6")
    with pytest.raises(ValueError):
        properties_for(a="x" * 256)


# ----------------------------------------------------------------------------- entities


def test_commit_entity(request_schema: Any) -> None:
    entity, overflow = commit_entity(
        _commit(message="m" * 5000, parent_count=2), ["ABC-1", "ABC-2", "ABC-1"], fallback_url=REPO_URL
    )
    assert overflow is None and entity is not None
    body = entity.body
    assert body["id"] == body["hash"] == "a" * 40
    assert body["issueKeys"] == ["ABC-1", "ABC-2"]
    assert body["updateSequenceId"] == update_sequence_id(T0 + timedelta(minutes=5))
    assert len(body["message"]) == 1024 and body["message"].endswith("…")
    assert body["flags"] == ["MERGE_COMMIT"]
    assert body["fileCount"] == 3 and "files" not in body
    assert body["displayId"] == "aaaaaaa"
    assert body["authorTimestamp"] == "2024-05-01T10:20:30.123Z"
    assert body["author"] == {"name": "Jane Doe", "email": "jane@example.com"}
    wrapped = {"repositories": [{"id": "1", "name": "w", "url": REPO_URL, "updateSequenceId": 1, "commits": [body]}]}
    assert _valid(request_schema, wrapped) == []


def test_a_commit_keeps_100_keys_and_reports_the_rest() -> None:
    entity, overflow = commit_entity(_commit(), _keys(150), fallback_url=REPO_URL)
    assert entity is not None and entity.body["issueKeys"] == _keys(100)
    assert overflow is not None and overflow.dropped == tuple(_keys(150)[100:])
    assert commit_entity(_commit(), [], fallback_url=REPO_URL) == (None, None)


def test_a_commit_without_a_usable_url_links_to_the_repository() -> None:
    for url in (None, "javascript:x", "https://x/" + "a" * 2000):
        entity, _ = commit_entity(_commit(url=url), ["ABC-1"], fallback_url=REPO_URL)
        assert entity is not None and entity.body["url"] == REPO_URL
    entity, _ = commit_entity(_commit(author_email="", author_name=""), ["ABC-1"], fallback_url=REPO_URL)
    assert entity is not None and entity.body["author"] == {"name": "Unknown", "email": UNKNOWN_EMAIL}


def test_branches_with_more_than_100_keys_become_siblings(request_schema: Any) -> None:
    branch = BranchInfo(
        name="feature/" + "n" * 600, head_sha="b" * 40, updated_at=T0, url=f"{REPO_URL}/tree/x", head=_commit("b" * 40)
    )
    entities = branch_entities(branch, _keys(250), fallback_url=REPO_URL)
    base = encode_id(branch.name)
    assert [e.id for e in entities] == [base, base + "~k1", base + "~k2"]
    assert [len(e.body["issueKeys"]) for e in entities] == [100, 100, 50]
    assert sorted(k for e in entities for k in e.body["issueKeys"]) == sorted(_keys(250))
    for e in entities:
        assert e.body["lastCommit"]["issueKeys"] == e.body["issueKeys"]
        assert e.body["lastCommit"]["id"] == "b" * 40
        assert utf16_length(e.body["name"]) <= 512
    wrapped = {
        "repositories": [
            {"id": "1", "name": "w", "url": REPO_URL, "updateSequenceId": 1, "branches": [e.body for e in entities]}
        ]
    }
    assert _valid(request_schema, wrapped) == []


def test_a_branch_whose_head_is_not_stored_still_has_a_last_commit() -> None:
    (entity,) = branch_entities(BranchInfo("main", "c" * 40, T0), ["ABC-1"], fallback_url=REPO_URL)
    head = entity.body["lastCommit"]
    assert head["id"] == head["hash"] == "c" * 40
    assert head["issueKeys"] == ["ABC-1"] and head["url"] == REPO_URL
    assert entity.body["url"] == REPO_URL


def test_pull_requests(request_schema: Any) -> None:
    pr = PullRequestInfo(
        external_id="42",
        title="t" * 2000,
        state="closed",
        source_branch="s" * 300,
        target_branch="main",
        url=f"{REPO_URL}/pull/42",
        updated_on_host=T0,
        author="octocat",
        display_prefix="!",
        source_branch_url=f"{REPO_URL}/tree/s",
        target_branch_url="javascript:x",
    )
    (entity,) = pull_request_entities(pr, ["ABC-1"], fallback_url=REPO_URL)
    body = entity.body
    assert body["status"] == "DECLINED"
    assert utf16_length(body["title"]) == 1024 and utf16_length(body["sourceBranch"]) == 255
    assert body["displayId"] == "!42" and body["commentCount"] == 0
    assert body["author"] == {"name": "octocat", "email": UNKNOWN_EMAIL, "username": "octocat"}
    assert body["sourceBranchUrl"].endswith("/tree/s") and "destinationBranchUrl" not in body
    assert body["lastUpdate"] == "2024-05-01T10:20:30.123Z"
    wrapped = {
        "repositories": [{"id": "1", "name": "w", "url": REPO_URL, "updateSequenceId": 1, "pullRequests": [body]}]
    }
    assert _valid(request_schema, wrapped) == []
    for state, expected in (("OPEN", "OPEN"), ("merged", "MERGED"), ("DECLINED", "DECLINED"), ("draft", "UNKNOWN")):
        (e,) = pull_request_entities(
            PullRequestInfo("1", "t", state, "s", "m", REPO_URL, T0), ["ABC-1"], fallback_url=REPO_URL
        )
        assert e.body["status"] == expected
    many = pull_request_entities(
        PullRequestInfo("7", "t", "OPEN", "s", "m", REPO_URL, T0), _keys(101), fallback_url=REPO_URL
    )
    assert [e.id for e in many] == ["7", "7~k1"]


# ----------------------------------------------------------------------------- packing


def _repo(i: int) -> dict[str, Any]:
    return RepositoryInfo(i, f"repo-{i}", f"{REPO_URL}{i}", T0).header()


def _commit_entities(n: int, *, offset: int = 0) -> list[Entity]:
    out = []
    for i in range(n):
        entity, _ = commit_entity(_commit(f"{offset + i:040x}"), ["ABC-1"], fallback_url=REPO_URL)
        assert entity is not None
        out.append(entity)
    return out


PUBLISHED = DevinfoLimits()


def _check_limits(requests: list[Any], limits: DevinfoLimits = PUBLISHED) -> None:
    for request in requests:
        body = request.body()
        repos = body["repositories"]
        assert 1 <= len(repos) <= limits.max_repositories
        total = 0
        for repo in repos:
            per_repo = sum(len(repo.get(k.value, [])) for k in EntityKind)
            assert 1 <= per_repo <= limits.max_entities_per_repository
            for kind in EntityKind:
                items = repo.get(kind.value, [])
                assert len(items) <= 400
                assert len({e["id"] for e in items}) == len(items)
            total += per_repo
        assert total <= limits.max_entities
        assert len(json.dumps(body)) <= limits.max_body_bytes or request.entity_count == 1


def test_one_big_repository_is_sent_400_at_a_time_with_nothing_lost() -> None:
    entities = _commit_entities(2500)
    requests = pack([(_repo(1), entities)], prevent_transitions=True, properties={"integrationId": "3"})
    _check_limits(requests)
    assert [r.entity_count for r in requests] == [400] * 6 + [100]
    sent = [e["id"] for r in requests for e in r.body()["repositories"][0]["commits"]]
    assert sent == [e.id for e in entities]
    body = requests[0].body()
    assert body["preventTransitions"] is True and body["properties"] == {"integrationId": "3"}


def test_many_repositories_respect_100_repositories_and_1000_entities() -> None:
    rng = random.Random(7)
    groups = [(_repo(i), _commit_entities(rng.randint(1, 30), offset=i * 100)) for i in range(250)]
    requests = pack(groups, prevent_transitions=False)
    _check_limits(requests)
    sent = [(r["id"], c["id"]) for req in requests for r in req.body()["repositories"] for c in r["commits"]]
    assert sent == [(str(h["id"]), e.id) for h, es in groups for e in es]
    assert any(len(req.body()["repositories"]) == 100 for req in requests) or all(
        req.entity_count > 900 for req in requests[:-1]
    )


def test_the_body_size_cap_starts_new_requests() -> None:
    limits = DevinfoLimits(max_body_bytes=50_000)
    entities = _commit_entities(200)
    requests = pack([(_repo(1), entities)], prevent_transitions=True, limits=limits)
    assert len(requests) > 1
    _check_limits(requests, limits)


def test_duplicates_are_refused_and_halves_keep_every_entity() -> None:
    entities = _commit_entities(3)
    with pytest.raises(ValueError):
        pack([(_repo(1), [*entities, entities[0]])], prevent_transitions=True)
    (request,) = pack([(_repo(1), entities), (_repo(2), _commit_entities(2, offset=50))], prevent_transitions=True)
    first, second = request.halves()
    assert [e.id for e in first.entities + second.entities] == [e.id for e in request.entities]
    assert first.prevent_transitions and second.prevent_transitions
    (single,) = pack([(_repo(1), entities[:1])], prevent_transitions=True)
    with pytest.raises(ValueError):
        single.halves()


def test_limits_cannot_be_raised_above_the_published_ones() -> None:
    with pytest.raises(ValueError):
        DevinfoLimits(max_entities=1001)
    with pytest.raises(ValueError):
        DevinfoLimits(max_entities_per_repository=401)
    with pytest.raises(ValueError):
        DevinfoLimits(max_repositories=101)
    with pytest.raises(ValueError):
        DevinfoLimits(max_issue_keys=101)


def test_packed_requests_fit_the_published_schema(request_schema: Any) -> None:
    branch = branch_entities(BranchInfo("feature/ABC-1", "d" * 40, T0), _keys(120), fallback_url=REPO_URL)
    prs = pull_request_entities(
        PullRequestInfo("5", "ABC-1", "OPEN", "f", "m", REPO_URL, T0), ["ABC-1"], fallback_url=REPO_URL
    )
    requests = pack(
        [(_repo(1), [*_commit_entities(5), *branch, *prs])],
        prevent_transitions=False,
        properties={"integrationId": "9"},
        provider_metadata={"product": "Git Connect for Jira"},
    )
    assert len(requests) == 1
    assert _valid(request_schema, requests[0].body()) == []
