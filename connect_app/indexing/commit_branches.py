"""Which branch each commit of a history walk belongs to, decided while ``git log`` streams.

``git log --source`` would name the *start point* a commit was reached from, and a release tag
is a start point too: everything below an old tag would be "reached through the tag". So the
walk labels commits itself, newest first, from the parents each commit lists:

* a commit a branch points at takes that branch (the default branch first when several do,
  then the shortest name);
* any other commit takes the label its first child in the walk handed down, except that the
  default branch, handed down along first parents, wins over any other branch (a commit on
  ``main`` is "main" even when a newer feature branch starts from it);
* a merged branch's commits keep that branch's name while the branch exists, and are the
  target's ("main") once it is deleted;
* commits only tags reach, and commits whose children the walk did not see (an incremental
  walk's older side), have none.

The state is the walk's frontier: one entry per parent not yet reached (freed when reached).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class BranchLabels:
    """Call :meth:`label` once per commit, in the walk's (newest-first) order."""

    def __init__(self, branches: Mapping[str, str], default_branch: str | None) -> None:
        self.default = default_branch if default_branch in branches else None
        order = sorted(branches, key=lambda n: (n != self.default, len(n), n))
        self.tips: dict[str, str] = {}
        for name in order:
            self.tips.setdefault(branches[name], name)
        self._pending: dict[str, str] = {}

    def label(self, sha: str, parents: Sequence[str]) -> str | None:
        inherited = self._pending.pop(sha, None)
        name = self.tips.get(sha, inherited)
        if name is None:
            return None
        pending = self._pending
        for i, parent in enumerate(parents):
            if i == 0 and name == self.default:
                pending[parent] = name
            else:
                pending.setdefault(parent, name)
        return name

    @property
    def frontier(self) -> int:
        """Parents handed a label and not reached yet (for tests and diagnostics)."""
        return len(self._pending)
