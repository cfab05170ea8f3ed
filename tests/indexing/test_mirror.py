"""Mirrors: one bare blobless clone per repository, fetched later; ref digests that let the
scheduler skip a repository with one ``git ls-remote``."""

from __future__ import annotations

from pathlib import Path

import pytest

from connect_app.errors import HostAuthError
from connect_app.indexing import mirror
from connect_app.indexing.sync import run_index
from connect_app.models import Trigger
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import run_git
from tests.support.indexing_fixtures import IndexingEnv


@pytest.fixture
def runner(indexing: IndexingEnv) -> mirror.GitRunner:
    return mirror.git_runner()


def test_mirror_path_is_per_tenant_and_repository(indexing: IndexingEnv, git_repo: ServedRepo) -> None:
    repo = indexing.add_repository(git_repo.url, password=git_repo.server.password)
    path = mirror.mirror_path(repo)
    assert path == indexing.settings.mirrors_dir / str(indexing.tenant_id) / f"{repo.id}.git"


def test_clone_then_fetch(indexing: IndexingEnv, git_repo: ServedRepo, runner: mirror.GitRunner) -> None:
    repo = indexing.add_repository(git_repo.url, password=git_repo.server.password)
    path = mirror.mirror_path(repo)
    auth = git_repo.server.auth

    git_repo.server.reset_requests()
    assert mirror.ensure_mirror(runner, repo, git_repo.url, auth, path) is True
    assert git_repo.server.filter_requested  # blobless
    assert run_git("config", "--get", "remote.origin.partialclonefilter", cwd=path).strip() == "blob:none"

    new = git_repo.builder.commit("ABC-99 later", branch="main")
    git_repo.builder.publish()
    assert mirror.ensure_mirror(runner, repo, git_repo.url, auth, path) is False  # fetched, not cloned
    assert mirror.mirror_refs(runner, path).branches["main"] == new


def test_mirror_digest_equals_the_remote_digest(
    indexing: IndexingEnv, git_repo: ServedRepo, runner: mirror.GitRunner
) -> None:
    """Annotated tags (v1.0 in the default history) are peeled the same way on both sides."""
    repo = indexing.add_repository(git_repo.url, password=git_repo.server.password)
    path = mirror.mirror_path(repo)
    mirror.ensure_mirror(runner, repo, git_repo.url, git_repo.server.auth, path)
    refs = mirror.mirror_refs(runner, path)
    assert refs.tags["v1.0"] == run_git("rev-parse", "v1.0^{commit}", cwd=git_repo.path).strip()
    assert refs.digest == mirror.remote_digest(runner, git_repo.url, git_repo.server.auth)
    assert set(refs.tips) == {*refs.branches.values(), *refs.tags.values()}

    git_repo.builder.tag("v2.0", "another annotated tag")
    git_repo.builder.publish()
    assert refs.digest != mirror.remote_digest(runner, git_repo.url, git_repo.server.auth)


def test_broken_partial_or_foreign_mirrors_are_recloned(
    indexing: IndexingEnv, git_repo: ServedRepo, runner: mirror.GitRunner
) -> None:
    repo = indexing.add_repository(git_repo.url, password=git_repo.server.password)
    path = mirror.mirror_path(repo)
    auth = git_repo.server.auth
    mirror.ensure_mirror(runner, repo, git_repo.url, auth, path)

    (path / "HEAD").unlink()
    leftover = path.parent / f".{path.name}.partial-deadbeef"
    leftover.mkdir()
    assert mirror.ensure_mirror(runner, repo, git_repo.url, auth, path) is True
    assert not leftover.exists()

    (path / mirror.MARKER).write_text("99:someone-else\n")  # a reused id on SQLite
    assert mirror.ensure_mirror(runner, repo, git_repo.url, auth, path) is True
    assert mirror.ensure_mirror(runner, repo, git_repo.url, auth, path) is False


def test_refs_unchanged_costs_one_ls_remote(indexing: IndexingEnv, git_repo: ServedRepo) -> None:
    repo = indexing.add_repository(git_repo.url, password=git_repo.server.password)
    assert mirror.refs_unchanged(repo) is False  # never indexed
    assert run_index(repo.id, Trigger.INITIAL).status == "done"
    repo = indexing.reload(repo)

    git_repo.server.reset_requests()
    assert mirror.refs_unchanged(repo) is True
    # The ref advertisement (plus the 401 that asks for credentials) and one ls-refs: no fetch.
    posts = [r for r in git_repo.server.requests if r.method == "POST"]
    assert len(posts) == 1 and not posts[0].sent_filter

    git_repo.builder.commit("ABC-100 new", branch="main")
    git_repo.builder.publish()
    assert mirror.refs_unchanged(repo) is False

    repo.walk_state = {"revs": [], "exclude": [], "done": 0}
    assert mirror.refs_unchanged(repo) is False  # a walk is pending: not "unchanged"


def test_refs_unchanged_raises_host_errors(indexing: IndexingEnv, git_repo: ServedRepo) -> None:
    repo = indexing.add_repository(git_repo.url, password="Wrong-Pass-42")
    repo.refs_digest = "0" * 64
    with pytest.raises(HostAuthError) as e:
        mirror.refs_unchanged(repo)
    assert "Wrong-Pass-42" not in str(e.value)


def test_remove_mirror(indexing: IndexingEnv, git_repo: ServedRepo, runner: mirror.GitRunner) -> None:
    repo = indexing.add_repository(git_repo.url, password=git_repo.server.password)
    path: Path = mirror.mirror_path(repo)
    mirror.ensure_mirror(runner, repo, git_repo.url, git_repo.server.auth, path)
    mirror.remove_mirror(repo)
    assert not path.exists()
    mirror.remove_mirror(repo)  # twice is fine
