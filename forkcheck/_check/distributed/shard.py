"""One shard of the distributed visited set: the states whose fingerprint is ``k mod S``.

A :class:`VisitedShard` runs as a Ray actor (calls to it are serialised, so
each method is atomic).  It records, for every state it owns, what the
assembly needs afterwards (the parent and step of its first claim, the node
attributes of the graph, what it violates) and, while the state is waiting to
be expanded, which worker holds it (``owner``) and the path that rebuilds it
anywhere.  Work that no worker holds (the initial state, states a worker gave
away, the states of a worker that died) waits in ``open`` for a worker to
:meth:`take` it.

Counting: ``created`` counts new states, ``finished`` the states that need
no more work (expanded, or ends); ``created - finished`` states are pending.
The coordinator declares the search over when every shard reports nothing
pending and the same counters twice in a row (see ``host.py``).

This module imports nothing of Ray: ``host.py`` wraps the class with
``ray.remote``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

#: A claim: (fingerprint, parent gid or -1, step (index, actor, label, where) or None, depth, path,
#: node attributes (violation kinds, enabled actors, done, labels, opaque, faulty), violations found
#: [(kind, name, message, details)], expandable)
Claim = tuple

OPEN = -1  # the owner of a pending state that no worker holds


def shard_of(fp: bytes, count: int) -> int:
    """The shard that owns the state of fingerprint ``fp``, among ``count``."""
    return int.from_bytes(fp[:8], "little") % count


class VisitedShard:
    """The states of fingerprints ``index mod count``; gids ``index + count * k``."""

    def __init__(self, index: int, count: int) -> None:
        self.index = index
        self.count = count
        self.gid_of: dict[bytes, int] = {}
        self.states: list[tuple] = []  # by local number: (fp, parent gid, step, depth, attrs, found)
        self.pending: dict[int, list] = {}  # gid -> [owner, path, depth, fp]
        self.open: deque[int] = deque()
        self.edges: dict[int, list] = {}  # gid of an expanded state -> its transitions
        self.dead: set[int] = set()
        self.created = 0
        self.finished = 0
        self.transitions = 0
        self.violations: set[tuple[str, str]] = set()
        self.deepest = 0

    def claim(self, worker: int, claims: list[Claim]) -> list[tuple[int, bool]]:
        """Record each state if it is new; ``(gid, new)`` for each, in order.

        A new state that is expandable becomes pending, held by ``worker``
        (or open, when ``worker`` is dead or is the coordinator, ``OPEN``).
        """
        out = []
        for fp, parent, step, depth, path, attrs, found, expandable in claims:
            gid = self.gid_of.get(fp)
            if gid is not None:
                out.append((gid, False))
                continue
            gid = self.index + self.count * len(self.states)
            self.gid_of[fp] = gid
            self.states.append((fp, parent, step, depth, attrs, found))
            self.created += 1
            self.deepest = max(self.deepest, depth)
            for kind, name, _message, _details in found:
                self.violations.add((kind, name))
            if expandable:
                owner = OPEN if worker == OPEN or worker in self.dead else worker
                self.pending[gid] = [owner, tuple(path), depth, fp]
                if owner == OPEN:
                    self.open.append(gid)
            else:
                self.finished += 1
            out.append((gid, True))
        return out

    def done(self, worker: int, results: list[tuple[int, list]]) -> None:
        """States expanded: ``(gid, transitions)``, each transition ``(index, actor, label, where, child gid, child fp)``.

        The first report of a state counts; another (the state was handed
        out again after its worker was thought dead) is dropped.
        """
        for gid, transitions in results:
            if self.pending.pop(gid, None) is None:
                continue
            self.edges[gid] = transitions
            self.finished += 1
            self.transitions += len(transitions)

    def release(self, worker: int, gids: list[int]) -> int:
        """``worker`` gives states back: they become open.  Returns how many it still held."""
        n = 0
        for gid in gids:
            rec = self.pending.get(gid)
            if rec is not None and rec[0] == worker:
                rec[0] = OPEN
                self.open.append(gid)
                n += 1
        return n

    def take(self, worker: int, limit: int) -> list[tuple[int, bytes, tuple, int]]:
        """Up to ``limit`` open states for ``worker``, who holds them from now on: ``(gid, fp, path, depth)``."""
        out: list[tuple[int, bytes, tuple, int]] = []
        if worker in self.dead:
            return out
        while self.open and len(out) < limit:
            gid = self.open.popleft()
            rec = self.pending.get(gid)
            if rec is None or rec[0] != OPEN:
                continue  # finished meanwhile, or listed twice
            rec[0] = worker
            out.append((gid, rec[3], rec[1], rec[2]))
        return out

    def worker_died(self, worker: int) -> int:
        """Open every state ``worker`` held; later claims and takes by it are treated as open.  How many."""
        self.dead.add(worker)
        n = 0
        for gid, rec in self.pending.items():
            if rec[0] == worker:
                rec[0] = OPEN
                self.open.append(gid)
                n += 1
        return n

    def counters(self) -> tuple[int, int, int, int, int, int]:
        """(created, finished, open, transitions, violations seen, deepest claim)."""
        return (self.created, self.finished, len(self.open), self.transitions, len(self.violations), self.deepest)

    def dump(self) -> dict[str, Any]:
        """Everything recorded, for the assembly of the graph."""
        return {"index": self.index, "count": self.count, "states": self.states, "edges": self.edges,
                "pending": sorted(self.pending)}

    def pid(self) -> int:
        import os

        return os.getpid()
