"""The live-snapshot budget: at most ``bound`` snapshot processes, evicted and rebuilt as needed.

A collaborator of ``Search`` (``search.py``).  Live snapshots are of three
kinds: frontier nodes waiting to be expanded (``resident``, evicted first
when room is needed: their process ends and the node keeps its report), the
snapshots a fork in flight will produce (``reserved``, ``unvisited``), and,
once anything was evicted, expanded nodes kept to rebuild their descendants
from (``factories``, least recently used first).  An evicted state is
rebuilt by one fork of its nearest live ancestor that replays the path in
between, and must reach the fingerprint it had.

A long path is kept cheap the same way.  Each fork adds a generation to the
kernel's chain of ``anon_vma`` structures of every mapping, which each later
fork and exit of the process walks: a fork of a snapshot 1200 generations
below the root took about 290 ms where a fork of a process that replayed
the same 1200 steps from the root took 3 ms (``forkcheck bench``, section 6).
So a frontier snapshot :data:`REBASE_GENERATION` generations deep is
released at once (:meth:`SnapshotPool.shed`), and rebuilt when its turn
comes from the root or a shallow factory: one replay every
``REBASE_GENERATION`` levels of a path, and no fork deeper than that.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Mapping

import trio

from .._errors import OUTSIDE_THE_MODEL, NondeterminismError

if TYPE_CHECKING:  # pragma: no cover
    from .._trace import Step
    from .keys import StateKey
    from .search import Node
    from .snapshots import Snapshot, SnapshotTree


#: A frontier snapshot this many forks below the root is released and rebuilt, shallow, when expanded.
REBASE_GENERATION = 32


class SnapshotPool:
    """Keeps the live snapshot processes of a search within ``bound``.

    ``mode`` is ``check(snapshot=...)``: "fork" keeps factories to rebuild
    from, "replay" rebuilds every state from the root.  ``parent_of`` maps a
    state number to its parent's and the step between (the search's parent
    pointers); ``evict_newest`` is the strategy's choice (BFS expands the
    newest frontier nodes last, so it evicts them first).
    """

    def __init__(self, tree: SnapshotTree, bound: int, mode: str, parent_of: Mapping[int, tuple[int, Step]],
                 keys: StateKey, evict_newest: bool = False) -> None:
        self.tree = tree
        self.bound = bound
        self.mode = mode
        self.parent_of = parent_of
        self.keys = keys
        self.evict_newest = evict_newest
        self.reserved = 0
        self.unvisited = 0  # children forked and not yet visited
        self.resident: OrderedDict[int, Node] = OrderedDict()  # frontier nodes holding a live snapshot
        self.factories: OrderedDict[int, Snapshot] = OrderedDict()  # expanded nodes kept to rebuild from
        self.evictions = 0
        self.rebuilds = 0
        self.rebuild_steps = 0
        self.rebases = 0  # frontier snapshots released for being deep in fork generations (shed)

    async def wait_room(self, k: int) -> None:
        while not self.make_room(k) and (self.reserved or self.unvisited):
            await trio.sleep(0.001)  # everything live is in use: wait for a fork in flight to be visited

    @asynccontextmanager
    async def slots(self, k: int):
        """Reserve room for ``k`` new snapshot processes within ``max_snapshots``."""
        await self.wait_room(k)
        self.reserved += k
        try:
            yield
        finally:
            self.reserved -= k

    def make_room(self, k: int) -> bool:
        """Evict until ``k`` more snapshots fit; False if everything live is in use."""
        while len(self.tree.live) + self.reserved + k > self.bound:
            if self.factories:
                _, snap = self.factories.popitem(last=False)  # least recently used first
                self.tree.release(snap)
                continue
            if not self.resident:
                return False
            _, victim = self.resident.popitem(last=self.evict_newest)
            assert victim.snap is not None  # resident: it holds a live snapshot
            if victim.snap is self.tree.root:
                # The root lives until the tree closes: evicting it frees nothing, and its node (a
                # frontier node again when the search by deviations keeps it) keeps its handle.
                continue
            self.tree.release(victim.snap)
            victim.snap = None
            self.evictions += 1
        return True

    def shed(self, node: Node) -> bool:
        """Release a frontier node's process if it is deep in fork generations; True if released.

        It is rebuilt from a shallow ancestor when expanded (:meth:`materialize`,
        or its children forked straight from that ancestor).  Only where a
        state may be rebuilt from an ancestor other than its parent (not in
        pages mode, which reads each child beside its parent).
        """
        snap = node.snap
        if snap is None or snap.gen < REBASE_GENERATION or self.mode != "fork" or not self.keys.direct_forks:
            return False
        self.tree.release(snap)
        node.snap = None
        self.rebases += 1
        return True

    def shrink(self) -> None:
        """A fork failed for lack of resources: lower the bound below what is live, and free."""
        self.bound = max(4, int(len(self.tree.live) * 0.9))
        self.make_room(0)

    def retire(self, node: Node) -> None:
        """A node is expanded: under memory pressure keep it to rebuild its descendants cheaply."""
        if node.snap is None:
            return
        if self.evictions and self.mode == "fork" and node.sid != 0:
            self.factories[node.sid] = node.snap
            self.factories.move_to_end(node.sid)
            self.make_room(0)
        else:
            self.tree.release(node.snap)

    def ancestor(self, sid: int, pinned: list) -> tuple[Snapshot, tuple[int, ...]]:
        """The nearest live ancestor of state ``sid`` and the path from it.

        A factory used as the ancestor is pinned (taken out of the LRU) so that
        making room for the fork cannot evict it; :meth:`unpin` puts it back.
        """
        path: list[int] = []
        while True:
            if sid == 0:
                assert self.tree.root is not None  # the tree is started before the search
                return self.tree.root, tuple(reversed(path))
            if self.mode == "fork" and sid in self.factories and self.factories[sid].gen < REBASE_GENERATION // 2:
                snap = self.factories.pop(sid)
                pinned.append((sid, snap))
                return snap, tuple(reversed(path))
            sid, step = self.parent_of[sid]
            path.append(step.index)

    def unpin(self, pinned: list) -> None:
        for sid, snap in pinned:
            self.factories[sid] = snap
        pinned.clear()
        self.make_room(0)

    async def materialize(self, node: Node, expected: bytes) -> None:
        """Rebuild an evicted state: one fork of its nearest live ancestor replays the path.

        ``expected`` is the fingerprint the state had: the rebuilt one must have it too.
        """
        if node.snap is not None:
            return
        pinned: list[tuple[int, Snapshot]] = []
        base, path = self.ancestor(node.sid, pinned)
        if not path and base is self.tree.root:
            # The root's own node, expanded in parts (the search by deviations): its process lives
            # until the tree closes, so there is nothing to rebuild.
            node.snap = base
            return
        try:
            async with self.slots(1):
                snap = await self.tree.step(base, path)
                await self.keys.observe(snap, base)  # its children reuse what is learnt of it
        finally:
            self.unpin(pinned)
        self.rebuilds += 1
        self.rebuild_steps += len(path)
        if snap.report.fingerprint != expected:
            self.tree.release(snap)
            raise NondeterminismError(
                f"rebuilding state {node.sid} by replaying {len(path)} transitions from a live ancestor reached a "
                f"different state: an actor depends on {OUTSIDE_THE_MODEL}; fix it, or use a larger max_snapshots")
        node.snap = snap
