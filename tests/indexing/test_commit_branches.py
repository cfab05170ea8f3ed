"""Which branch a commit was reached through (``commit.branch``), and how far linked branches
are ahead of and behind the default branch: indexed from a real repository over loopback HTTP."""

from __future__ import annotations

from sqlalchemy import select

from connect_app.indexing.commit_branches import BranchLabels
from connect_app.models import Branch, Commit, RunStatus, Trigger
from tests.indexing import sync_support
from tests.indexing.sync_support import add, index, pusher
from tests.support.git_fixtures import ServedRepo
from tests.support.git_server import run_git
from tests.support.indexing_fixtures import IndexingEnv

history_template = sync_support.history_template  # fixtures
source = sync_support.source


def _commit_branches(indexing: IndexingEnv, repo_id: int) -> dict[str, str | None]:
    rows = indexing.session.execute(select(Commit.sha, Commit.branch).where(Commit.repository_id == repo_id))
    return {sha: name for sha, name in rows}


def _ahead_behind(indexing: IndexingEnv, repo_id: int, name: str) -> tuple[int | None, int | None, str | None]:
    indexing.session.expire_all()
    branch = indexing.session.scalars(select(Branch).where(Branch.repository_id == repo_id, Branch.name == name)).one()
    return branch.ahead, branch.behind, branch.compared_head_sha


def _count(source: ServedRepo, revs: str) -> int:
    return int(run_git("rev-list", "--count", revs, cwd=source.path).strip())


def test_commits_only_one_branch_reaches_carry_that_branch(indexing: IndexingEnv, source: ServedRepo) -> None:
    indexing.add_projects("ABC", "DEF")
    repo = add(indexing, source)
    git = pusher(source)
    only_main = git.commit("ABC-40 on main only", branch="main")
    spike = git.commit("ABC-41 on a spike", branch="ABC-41-spike")
    git.checkout("main")
    git.tag("tag-on-main")  # a tag on main's tip: main's commits still carry "main"
    git.git("checkout", "--quiet", "--detach")
    tag_only = git.commit("ABC-42 reachable from a tag only")
    git.tag("v9-detached")
    git.publish()

    assert index(repo, Trigger.INITIAL).status == RunStatus.DONE.value
    branches = _commit_branches(indexing, repo.id)
    assert branches[only_main] == "main"
    assert branches[spike] == "ABC-41-spike"
    assert branches[tag_only] is None
    # Every commit of main's first-parent line is "main", tags or not (HISTORY has v0.1 and v1.0 on it).
    for sha in run_git("rev-list", "--first-parent", "refs/heads/main", cwd=source.path).split():
        assert branches[sha] == "main", sha
    # Every commit of a branch-only history names a branch that really contains it.
    for sha, name in branches.items():
        if name is not None:
            run_git("merge-base", "--is-ancestor", sha, f"refs/heads/{name}", cwd=source.path)

    # An incremental index names the branch the new commits came through.
    later = git.commit("ABC-43 later, on the release branch", branch="release/1.x")
    git.publish()
    assert index(repo).status == RunStatus.DONE.value
    assert _commit_branches(indexing, repo.id)[later] == "release/1.x"


def test_labels_prefer_the_default_branch_and_keep_a_merged_branch_while_it_exists() -> None:
    # main: m1 <- m2 <- merge(m2, f2) ; feature: m1 <- f1 <- f2 (newer than m2) ; gone: m1 <- g1
    # old-tag points at m1 (a tag is never a label); newest first, as git log walks.
    sha = {n: n.ljust(40, "0") for n in ("m1", "m2", "mg", "f1", "f2", "g1", "x1")}
    labels = BranchLabels({"main": sha["mg"], "feature": sha["f2"], "zz": sha["mg"]}, "main")
    walk = [("mg", ("m2", "f2")), ("f2", ("f1",)), ("g1", ("m1",)), ("f1", ("m1",)), ("m2", ("m1",)), ("m1", ())]
    got = {n: labels.label(sha[n], tuple(sha[p] for p in parents)) for n, parents in walk}
    assert got == {"mg": "main", "f2": "feature", "g1": None, "f1": "feature", "m2": "main", "m1": "main"}
    assert labels.frontier == 0

    # Without the branch "feature" (deleted after the merge), its commits belong to main.
    labels = BranchLabels({"main": sha["mg"]}, "main")
    got = {n: labels.label(sha[n], tuple(sha[p] for p in parents)) for n, parents in walk if n != "g1"}
    assert set(got.values()) == {"main"}

    # Several branches at one tip and no default branch: the shortest name.
    assert BranchLabels({"zz": sha["x1"], "longer": sha["x1"]}, None).label(sha["x1"], ()) == "zz"
    assert BranchLabels({"zz": sha["x1"]}, "missing").label(sha["m1"], ()) is None


def test_linked_branches_are_counted_ahead_and_behind_the_default_branch(
    indexing: IndexingEnv, source: ServedRepo
) -> None:
    indexing.add_projects("ABC")
    repo = add(indexing, source)
    git = pusher(source)
    git.checkout("main")
    git.commit("ABC-50 branch work 1", branch="ABC-50-work")
    git.commit("ABC-50 branch work 2")
    git.checkout("main")
    git.commit("main moves on 1")
    git.commit("main moves on 2")
    git.commit("main moves on 3")
    git.commit("unlinked branch", branch="no-key-here")
    git.publish()

    assert index(repo, Trigger.INITIAL).status == RunStatus.DONE.value
    head = run_git("rev-parse", "refs/heads/ABC-50-work", cwd=source.path).strip()
    assert _ahead_behind(indexing, repo.id, "ABC-50-work") == (2, 3, head)
    assert (_count(source, "main..ABC-50-work"), _count(source, "ABC-50-work..main")) == (2, 3)
    # Branches without an issue key are not shown in the panel, so not counted; neither is main.
    assert _ahead_behind(indexing, repo.id, "no-key-here")[0] is None
    assert _ahead_behind(indexing, repo.id, "main")[0] is None

    # The default branch moves: counted again at the next index; the branch's order is kept.
    before = indexing.session.scalars(select(Branch.updated_at).where(Branch.name == "ABC-50-work")).one()
    git.checkout("main")
    git.commit("main moves on 4")
    git.publish()
    assert index(repo).status == RunStatus.DONE.value
    assert _ahead_behind(indexing, repo.id, "ABC-50-work") == (2, 4, head)
    after = indexing.session.scalars(select(Branch.updated_at).where(Branch.name == "ABC-50-work")).one()
    assert after == before

    # The branch catches up (main merged in): ahead 3 (its 2 + the merge), behind 0.
    git.merge("main", into="ABC-50-work", message="ABC-50 merge main")
    git.publish()
    assert index(repo).status == RunStatus.DONE.value
    new_head = run_git("rev-parse", "refs/heads/ABC-50-work", cwd=source.path).strip()
    assert _ahead_behind(indexing, repo.id, "ABC-50-work") == (3, 0, new_head)
