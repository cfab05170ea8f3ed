"""Which due repositories get a job now: fair across tenants, within caps (pure).

The rules, in order:

* caps: at most ``tenant_cap`` index jobs queued or running per tenant, and at most
  ``credential_cap(key)`` per host credential (0 while it is paused by a rate limit,
  lower when the host says the budget is nearly spent);
* round robin across tenants: the next job goes to the tenant whose best waiting
  repository is *urgent* (never indexed, or someone asked: webhook / "reindex now"),
  then to the tenant with the fewest jobs in flight, then to the oldest due. So a
  tenant with 5,000 waiting repositories gets its share and no more: another tenant's
  first index is picked within the first round;
* within a tenant: urgent first, then oldest due.

Each tenant's queue is consumed in order; a repository whose credential is full is
skipped (it waits for the next dispatch), not reordered.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Candidate:
    """A repository that is due, as the dispatcher sees it."""

    repository_id: int
    tenant_id: int
    integration_id: int
    credential_key: str
    first_index: bool  # never indexed successfully
    requested: bool  # a webhook or a person asked for it
    due_at: datetime

    @property
    def urgent(self) -> bool:
        return self.first_index or self.requested

    def sort_key(self) -> tuple[bool, datetime, int]:
        return (not self.urgent, self.due_at, self.repository_id)


def select_fair(
    candidates: Iterable[Candidate],
    *,
    tenant_inflight: Mapping[int, int],
    credential_inflight: Mapping[str, int],
    tenant_cap: int,
    credential_cap: Callable[[str], int],
) -> list[Candidate]:
    """The candidates to enqueue now, in the order to enqueue them.

    ``credential_cap`` is asked at most once per credential, and only for credentials
    that have a candidate still in the running (it may read the host's rate budget).
    """
    queues: dict[int, deque[Candidate]] = {}
    for c in sorted(candidates, key=Candidate.sort_key):
        queues.setdefault(c.tenant_id, deque()).append(c)
    tenant_used: Counter[int] = Counter(tenant_inflight)
    cred_used: Counter[str] = Counter(credential_inflight)
    cred_caps: dict[str, int] = {}

    def cred_full(key: str) -> bool:
        if key not in cred_caps:
            cred_caps[key] = credential_cap(key)
        return cred_used[key] >= cred_caps[key]

    def head(tenant: int) -> Candidate | None:
        q = queues[tenant]
        while q and cred_full(q[0].credential_key):
            q.popleft()
        return q[0] if q and tenant_used[tenant] < tenant_cap else None

    def rank(tenant: int, c: Candidate) -> tuple[bool, int, datetime, int]:
        return (not c.urgent, tenant_used[tenant], c.due_at, c.repository_id)

    heap: list[tuple[tuple[bool, int, datetime, int], int]] = []
    for tenant in queues:
        first = head(tenant)
        if first is not None:
            heap.append((rank(tenant, first), tenant))
    heapq.heapify(heap)

    chosen: list[Candidate] = []
    while heap:
        key, tenant = heapq.heappop(heap)
        current = head(tenant)
        if current is None:
            continue
        if rank(tenant, current) != key:  # its head or load changed since: queue it again
            heapq.heappush(heap, (rank(tenant, current), tenant))
            continue
        queues[tenant].popleft()
        chosen.append(current)
        tenant_used[tenant] += 1
        cred_used[current.credential_key] += 1
        following = head(tenant)
        if following is not None:
            heapq.heappush(heap, (rank(tenant, following), tenant))
    return chosen
