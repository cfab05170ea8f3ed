"""The browser's git walks on a real blobless mirror: ref resolution (and refusing what git
must never see), ``git log A..B`` paging, counts and files changed, checked against the
test side's own ``git``."""

from __future__ import annotations

from pathlib import Path

import pytest

from connect_app.errors import NotFound, ValidationError
from connect_app.indexing.git_compare import MirrorReader, RefKind, mirror_ready
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import GitHttpServer, make_bulk_repo, run_git


@pytest.fixture
def mirror(git_repo: ServedRepo, tmp_path: Path) -> Path:
    path = tmp_path / "mirror.git"
    MirrorReader(allow_private=True).clone_mirror(git_repo.url, path, git_repo.server.auth)
    assert mirror_ready(path)
    return path


@pytest.fixture
def reader() -> MirrorReader:
    return MirrorReader(allow_private=True)


def rev(repo: ServedRepo, name: str) -> str:
    return run_git("rev-parse", f"{name}^{{commit}}", cwd=repo.path).strip()


def log_shas(repo: ServedRepo, spec: str) -> list[str]:
    return run_git("log", "--format=%H", spec, cwd=repo.path).split()


def test_resolves_branches_tags_and_shas(reader: MirrorReader, mirror: Path, git_repo: ServedRepo) -> None:
    main = reader.resolve(mirror, "main")
    assert (main.kind, main.name, main.sha) == (RefKind.BRANCH, "main", rev(git_repo, "main"))
    tag = reader.resolve(mirror, "v1.0")  # annotated: peeled to its commit
    assert (tag.kind, tag.sha) == (RefKind.TAG, rev(git_repo, "v1.0"))
    assert reader.resolve(mirror, "refs/heads/feature/ABC-12-fix").kind is RefKind.BRANCH
    assert reader.resolve(mirror, "refs/tags/v0.1").sha == rev(git_repo, "v0.1")
    sha = rev(git_repo, "release/1.x")
    assert reader.resolve(mirror, sha).kind is RefKind.COMMIT


def test_a_tag_wins_over_a_branch_of_the_same_name_as_in_git(
    reader: MirrorReader, git_repo: ServedRepo, tmp_path: Path
) -> None:
    run_git("branch", "v0.1", "main", cwd=git_repo.path)  # a branch named like the tag, elsewhere
    path = tmp_path / "m.git"
    reader.clone_mirror(git_repo.url, path, git_repo.server.auth)
    assert reader.resolve(path, "v0.1").kind is RefKind.TAG
    assert reader.resolve(path, "v0.1").sha == rev(git_repo, "refs/tags/v0.1")
    assert reader.resolve(path, "refs/heads/v0.1").sha == rev(git_repo, "main")


@pytest.mark.parametrize(
    "ref",
    ["-x", "--output=/tmp/gcj-pwned", "--all", "a..b", "main~1", "main^", "HEAD@{1}", "x y", "a:b", "refs/heads/", "."],
)
def test_ref_illegal_and_option_like_text_is_refused_before_git(
    reader: MirrorReader, mirror: Path, ref: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as raised:
        reader.resolve(mirror, ref)
    assert raised.value.code == "bad_ref"
    assert "is not a valid branch or tag name" in raised.value.message
    assert not Path("/tmp/gcj-pwned").exists()


def test_unknown_names_and_shas(reader: MirrorReader, mirror: Path) -> None:
    for ref in ("nope", "refs/tags/main", "feature", "0" * 40):
        with pytest.raises(NotFound) as raised:
            reader.resolve(mirror, ref)
        assert raised.value.code == "unknown_ref"
    with pytest.raises(NotFound) as abbreviated:
        reader.resolve(mirror, "deadbee")
    assert "full 40-character commit id" in abbreviated.value.message


def test_walk_count_and_files_match_git(reader: MirrorReader, mirror: Path, git_repo: ServedRepo) -> None:
    base, head = rev(git_repo, "v0.1"), rev(git_repo, "release/1.x")
    expected = log_shas(git_repo, f"{base}..{head}")
    entries = list(reader.walk(mirror, head, base))
    assert [e.sha for e in entries] == expected
    assert reader.count(mirror, head, base) == len(expected) == 4
    merge = next(e for e in entries if e.message == "Merge branch 'feature/ABC-12-fix'")
    assert len(merge.parents) == 2
    bob = next(e for e in entries if e.message == "More work on [ABC-12]")
    assert (bob.author_name, bob.author_email) == ("Bob", "bob@example.com")
    assert any("\u00e9" in e.message and "\t" in e.message for e in entries)
    files = run_git("diff", "--name-only", f"{base}...{head}", cwd=git_repo.path).split()
    assert reader.files_changed(mirror, head, base) == len(files) > 0
    # pages by position cover the same commits, in the same order
    pages = [[e.sha for e in reader.walk(mirror, head, base, skip=s, max_count=2)] for s in (0, 2, 4)]
    assert pages == [expected[:2], expected[2:4], []]


def test_walk_stops_git_when_the_reader_stops(reader: MirrorReader, mirror: Path, git_repo: ServedRepo) -> None:
    walk = reader.walk(mirror, rev(git_repo, "release/1.x"))
    first = next(walk)
    walk.close()
    assert first.sha == rev(git_repo, "release/1.x")


def test_ranges_over_ten_thousand_commits_page_through(
    reader: MirrorReader, open_git_server: GitHttpServer, git_repo_name: str, tmp_path: Path
) -> None:
    source = open_git_server.add_repo(git_repo_name, lambda p: make_bulk_repo(p, 10_050, files=64))
    root = run_git("rev-list", "--max-parents=0", "main", cwd=source).split()[0]
    path = tmp_path / "big.git"
    reader.clone_mirror(open_git_server.url_for(git_repo_name), path)
    head = reader.resolve(path, "main").sha
    assert reader.count(path, head, root) == 10_049
    expected = log_shas_at(source, f"{root}..{head}")
    got: list[str] = []
    while len(got) < len(expected):
        page = [e.sha for e in reader.walk(path, head, root, skip=len(got), max_count=2_500)]
        assert page
        got += page
    assert got == expected
    assert reader.files_changed(path, head, root) == 64


def log_shas_at(path: Path, spec: str) -> list[str]:
    return run_git("log", "--format=%H", spec, cwd=path).split()
