"""The trio explorer: drives snapshot processes, records the state graph, finds violations.

:func:`check` validates options, starts a :class:`SnapshotTree`, and lets a
strategy (``_strategies.py``) walk the graph through the small :class:`Search`
interface.  Fingerprints come from the snapshot processes; the graph is a
``networkx.DiGraph`` keyed by state number in discovery order.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
import threading
import time
import warnings
from typing import Any, Awaitable, Callable

import networkx as nx
import trio

from .. import _protocol as P
from .._graph import StateGraph
from .._errors import (OUTSIDE_THE_MODEL, Interrupted, ModelError, NondeterminismError, OpaqueStateWarning,
                       UnboundedWarning, UsageError)
from .._model import FILE_MODULE_PREFIX, Model, as_model, bound_repr, replay_command, shell_target
from .keys import state_key
from .pool import SnapshotPool
from .reduction import Reduction, make_reduction
from .._results import CheckResult, Stats, Violation
from .snapshots import Snapshot, SnapshotTree, raise_model_error
from .options import CheckOptions
from .strategies import STRATEGIES
from .._trace import Replay, ReplayStep, Step, Trace


#: The likely-infinite hint looks at windows of this many new states (see Search._watch_depth).
_DEPTH_WINDOW = 1000

#: An expanded state's process takes its last transition itself (``Fork.in_place``) instead of forking
#: a child for it, where nothing needs that state's process afterwards (``Search._in_place``): one fork
#: less per expanded state.  An internal switch, for the tests that compare graphs with it off.
IN_PLACE = True


class Node:
    """A state being explored: its number, depth, report and live snapshot (None once evicted).

    ``path`` is None when ``snap`` is the state the parent pointers lead to
    (``Search.trace_to``); under symmetry a random walk may hold another
    member of its orbit, reached by ``path`` (transitions are numbered in
    each concrete state).  ``stale``: under symmetry, a state expanded again
    (max_depth) whose ``report`` is that of the member the shorter path
    reached; the recorded state is rebuilt and its own report replaces it.
    ``tag``: the reduction's, for a state it expands again (reduction.py).
    """

    __slots__ = ("sid", "depth", "snap", "report", "path", "stale", "tag")
    snap: Snapshot | None

    def __init__(self, sid: int, depth: int, snap: Snapshot, path: list[Step] | None = None, tag: Any = None) -> None:
        self.sid = sid
        self.depth = depth
        self.snap = snap
        self.report = snap.report
        self.path = path
        self.stale = False
        self.tag = tag


class Search:
    """Bookkeeping shared by every strategy: seen states, the graph, traces, violations."""

    def __init__(self, tree: SnapshotTree, model: Model, opts: CheckOptions) -> None:
        self.tree = tree
        self.model = model
        self.opts = opts
        self.jobs = opts.jobs
        self.seed = opts.seed
        self.walks = opts.walks
        self.max_depth = opts.max_depth
        self.seen: dict[bytes, int] = {}  # state key -> state number
        # What identifies a state (keys.py), and which of its transitions are taken (reduction.py).
        self.keys = state_key(opts.fingerprint)
        self.reduction: Reduction = make_reduction(opts.reduction, self.status)
        self.closed: set[int] = set()  # states expanded (or being expanded): Search.status
        self.graph = StateGraph()
        self.parent: dict[int, tuple[int, Step]] = {}
        # Under symmetry (the root declared fc.symmetric sets): a fingerprint stands for an orbit, and a
        # snapshot of a known state may be another member of it, whose transitions are numbered otherwise.
        # Traces follow the snapshot that discovered each state; states first reached from a random walk's
        # other member have their whole path here instead of a parent pointer.
        self.symmetric: list[tuple[str, int]] = []
        self.paths: dict[int, list[Step]] = {}
        # How the snapshots fingerprint (Load.symmetry): traces record it, for replay to do the same.
        self.trace_symmetry: bool = getattr(tree, "symmetry", True)
        self.transitions = 0
        self.violations: list[Violation] = []
        self.discoveries: dict[str, Trace | None] = {}
        self.origin = origin_module(model)  # what the tokens carry as Trace.module
        self.found_on = bound_repr(model)  # ... and as Trace.model
        self.warnings: list[Warning] = []  # given when the check returns (give_warnings)
        self._violating: list[tuple[Violation, Snapshot]] = []
        # Where each counterexample may be shortened (shorten_traces): the state its trace must reach
        # through the graph, and the steps that follow it unchanged (the transition that failed).
        self._anchors: list[tuple[Violation, int, list[Step]]] = []
        self.stopped = False
        # Why the graph is not the whole reachable graph, as it happens (see ``incomplete``).
        self._reasons: list[str] = []  # reasons found after the search (liveness's own frontier check)
        self._lost: list[str] = []  # causes that left a reachable state unrecorded (max_states)
        self._stop_causes: list[str] = []  # what set ``stopped``: counted only if it left states unexpanded
        # States whose transitions are not all explored yet -> the depth they were reached at.
        self.frontier: dict[int, int] = {}
        # States with transitions that a fc.constraint kept from being expanded, by constraint name.
        self.cut: dict[str, set[int]] = {}
        # The likely-infinite hint (UnboundedWarning): the deepest depth at the start of each window of states.
        self._depth_mark = 0
        self.hint = ""
        # Bounded search: the smallest depth each state was reached at, to expand it again
        # when a shorter path reaches it (a depth-first search meets long paths first).
        self.reexpand = opts.max_depth is not None and opts.strategy != "random"
        self.depth_of: dict[int, int] = {}
        self.expanded: set[int] = set()  # kept only under reexpand
        self.taken: dict[int, set[int]] = {}  # random walks: the transitions taken from each state
        self.deadline = None if opts.time_limit is None else time.monotonic() + opts.time_limit
        self.deepest = 0
        self.interrupted = ""  # "SIGINT" or "SIGTERM" when the user stopped the check
        # The live-snapshot budget (pool.py); the strategy says which frontier nodes to evict first.
        self.pool = SnapshotPool(tree, opts.max_snapshots if opts.max_snapshots is not None else default_max_snapshots(),
                                 opts.snapshot, self.parent, self.keys,
                                 evict_newest=getattr(STRATEGIES[opts.strategy], "evicts_newest", False))
        self._opaque_warned: set[str] = set()
        self._started = time.monotonic()
        self._next_progress = self._started

    def warn(self, warning: Warning) -> None:
        """Keep a warning for the caller of the check (:func:`give_warnings`), once per text."""
        if all(str(w) != str(warning) or type(w) is not type(warning) for w in self.warnings):
            self.warnings.append(warning)

    # -- the strategy interface ------------------------------------------------

    def release(self, node: Node) -> None:
        if node.snap is not None:
            self.tree.release(node.snap)

    def superseded(self, node: Node) -> bool:
        """Whether ``node``'s state was expanded from a shorter path since ``node`` was queued (max_depth)."""
        return self.reexpand and node.sid in self.expanded and node.depth > self.depth_of.get(node.sid, node.depth)

    def discard(self, node: Node) -> None:
        """Drop a queued node without expanding it."""
        if self.pool.resident.get(node.sid) is node:
            del self.pool.resident[node.sid]
        self.release(node)

    def status(self, report: P.Report) -> str:
        """Whether the state of ``report`` is "new", "open" (known, to expand) or "closed" (expanded or being expanded)."""
        sid = self.seen.get(report.fingerprint) if report.pid != 0 else None
        if sid is None:
            return "new"
        return "closed" if sid in self.closed else "open"

    async def expand(self, nodes: list[Node], plans: list[list[int]] | None = None,
                     keep: list[bool] | None = None) -> list[list[Node]]:
        """Fork the transitions of ``nodes`` the reduction names; visit the children in order.

        Returns, per node, the children that reached new states still to expand.
        ``plans`` forks only the given transitions of each node instead (the
        search by deviations, ``deviations.py``, takes a state's free steps and
        its deviations apart); a node whose ``keep`` is true has transitions
        left to take: it stays a frontier node, its snapshot kept if it can be.
        """
        for node in nodes:
            self.pool.resident.pop(node.sid, None)
            self.frontier.pop(node.sid, None)
            self.closed.add(node.sid)
        if self.reduction.footprints:
            done: list[list[Node]] = []
            for node in nodes:
                done.append(await self._expand_in_rounds(node))
                if self.stopped:
                    for rest in nodes[len(done):]:  # not expanded: still on the frontier, their processes ended
                        self.frontier[rest.sid] = rest.depth
                        self.closed.discard(rest.sid)
                        self.release(rest)
                        done.append([])
                    break
            self._check_budget()
            return done
        # A state expanded again (reached by a shorter path under max_depth) recorded its
        # transitions the first time: they are not counted or drawn twice.
        again = [False] * len(nodes)
        if self.reexpand:  # without a depth bound a state is expanded once: no set to keep
            again = [node.sid in self.expanded for node in nodes]
            self.expanded.update(node.sid for node in nodes)
        # An evicted node with few transitions is not rebuilt: each child is forked straight
        # from the nearest live ancestor, replaying the path plus the child's transition.
        direct: dict[int, tuple[Snapshot, tuple[int, ...]]] = {}
        pinned: list[tuple[int, Snapshot]] = []
        for k, node in enumerate(nodes):
            if node.snap is None and not node.stale and len(node.report.transitions) <= 2 and self.keys.direct_forks:
                direct[k] = self.pool.ancestor(node.sid, pinned)
            else:
                await self.pool.materialize(node, bytes.fromhex(self.graph.nodes[node.sid]["fingerprint"]))
                if node.stale:  # the transitions are those of the recorded state, numbered as it numbers them
                    assert node.snap is not None
                    node.report, node.stale = node.snap.report, False
        results: dict[tuple[int, int], tuple[Snapshot, Snapshot | None]] = {}
        plan = plans if plans is not None else [self.reduction.to_expand(node) for node in nodes]
        ready = {(k, i): trio.Event() for k in range(len(nodes)) for i in plan[k]}
        # The last transition of a node whose process nothing needs afterwards is taken by that process
        # itself, once every other fork of it has finished (and can no longer be retried from it).
        last = {k: plan[k][-1] for k, node in enumerate(nodes)
                if plan[k] and k not in direct and not (keep is not None and keep[k]) and self._in_place(node)}
        others = {k: len(plan[k]) - 1 for k in last}
        others_done = {k: trio.Event() for k in last}
        for k, n in others.items():
            if n == 0:
                others_done[k].set()

        async def take(k: int, i: int, reseed: bool = False) -> Snapshot:
            if k in direct:
                base, path = direct[k]
                return await self.tree.step(base, path + (i,), reseed)
            snap = nodes[k].snap
            assert snap is not None  # materialized above
            if last.get(k) == i:
                await others_done[k].wait()
                nodes[k].snap = None  # its process becomes the child: the node is rebuilt if ever needed
                return await self.tree.step(snap, i, in_place=True)
            return await self.tree.step(snap, i, reseed)

        gate = trio.Semaphore(self.jobs)

        async def fork(k: int, i: int, need: int) -> None:
            parent = nodes[k].snap
            try:
                child, twin = await self._fork_checked(lambda reseed: take(k, i, reseed), parent, need)
            finally:
                self.pool.reserved -= need
                gate.release()
                if k in last and i != last[k]:
                    others[k] -= 1
                    if others[k] == 0:
                        others_done[k].set()
            results[k, i] = (child, twin)
            self.pool.unvisited += 1
            ready[k, i].set()

        async def produce(nursery) -> None:
            # Forks start in transition order, and only when there is room for them: a fork
            # waiting for room waits only for earlier children, which the visitor will take.
            for k, i in ready:
                await gate.acquire()
                need = 2 if nodes[k].sid < self.opts.determinism_checks else 1
                await self.pool.wait_room(need)
                self.pool.reserved += need
                nursery.start_soon(fork, k, i, need)

        out: list[list[Node]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce, nursery)
            # Visit in transition order as results arrive, so that a child is released or
            # becomes evictable at once: live snapshots stay within max_snapshots.
            for k, node in enumerate(nodes):
                children = []
                for i in plan[k]:
                    await ready[k, i].wait()
                    child, twin = results.pop((k, i))
                    self.pool.unvisited -= 1
                    if twin is not None:
                        await self._nondeterminism(node, i, child, twin)
                    seen_before = again[k]
                    if plans is not None and self.reexpand:
                        # Parts of a state are taken at different times: what was taken is per transition.
                        taken = self.taken.setdefault(node.sid, set())
                        seen_before = i in taken
                        taken.add(i)
                    new = self._visit(node, i, child, seen_before)
                    if new is not None and self._expandable(new):
                        children.append(new)
                        if new.snap is None:
                            self._drop(child)  # to be rebuilt along the recorded path (symmetry)
                        elif self.opts.snapshot == "replay":
                            self.tree.release(child)  # reference mode: states are rebuilt from the root
                            new.snap = None
                        elif not self.pool.shed(new):  # deep in fork generations: released, rebuilt shallow
                            self.pool.resident[new.sid] = new
                    else:
                        self._drop(child)
                if keep is not None and keep[k]:
                    self.frontier[node.sid] = node.depth  # transitions left: still a frontier node
                    if node.snap is not None and self.opts.snapshot == "replay":
                        self.tree.release(node.snap)
                        node.snap = None
                    elif node.snap is not None and not self.pool.shed(node):
                        self.pool.resident[node.sid] = node
                else:
                    self.pool.retire(node)
                out.append(children)
        self.pool.unpin(pinned)
        self._check_budget()
        return out

    def _in_place(self, node: Node) -> bool:
        """Whether ``node``'s process may take its last transition itself: nothing needs it afterwards.

        Not the root (its process holds the tree together; in the notebook, the
        start node, which the user may go back to); not a state whose
        transitions are taken twice (the determinism check forks a twin after
        the child); not under memory pressure (an expanded state is kept as a
        factory to rebuild its descendants from, ``SnapshotPool.retire``); not
        with page keys (a child is read beside its live parent); not a state
        held to be described (a violation).  Reductions expand in rounds and
        compare each child with its parent process (``_expand_in_rounds``),
        and random walks step by ``step_one``: neither comes here.  A node
        whose process is gone is like an evicted one: ``SnapshotPool.materialize``
        rebuilds it from a live ancestor if it is ever expanded again (max_depth).
        """
        snap = node.snap
        return (IN_PLACE and snap is not None and snap is not self.tree.root and not snap.closed
                and node.sid >= self.opts.determinism_checks and not self.pool.evictions
                and self.keys.direct_forks and snap not in self._held())

    async def _fork_checked(self, take: Callable[[bool], Awaitable[Snapshot]], parent: Snapshot | None,
                            need: int) -> tuple[Snapshot, Snapshot | None]:
        """Fork one transition (``take(reseed)``); with ``need == 2``, take it again: the twin, if it differs.

        The same transition taken twice from the same snapshot must reach the
        same state; the second time with a fresh random module, so that its
        use shows.  A twin that agrees is released at once.
        """
        child = await take(False)
        await self.keys.observe(child, parent)  # while its parent is alive
        if need != 2 or child.report.pid == 0:
            return child, None
        twin = await take(True)
        if twin.report.fingerprint == child.report.fingerprint or twin.report.pid == 0:
            self.tree.release(twin)
            return child, None
        return child, twin

    async def _expand_in_rounds(self, node: Node) -> list[Node]:
        """Expand one node under a reduction: fork what it names, visit, ask for more, until it is done.

        Every child is forked straight from the node's own snapshot (a
        footprint compares the child with its parent process), and the
        children of a round are visited before the next round is forked: the
        next round may depend on where they led (the cycle proviso).
        """
        await self.pool.materialize(node, bytes.fromhex(self.graph.nodes[node.sid]["fingerprint"]))
        snap = node.snap
        assert snap is not None  # materialized above
        if snap.report.footprint is None and snap.report.transitions:
            await self.tree.footprint(snap)  # asked only of the states expanded, not of every child
        keep: list[Node] = []
        batch = self.reduction.to_expand(node)
        while batch:
            results: dict[int, tuple[Snapshot, Snapshot | None]] = {}
            ready = {i: trio.Event() for i in batch}
            gate = trio.Semaphore(self.jobs)

            async def fork(i: int, need: int) -> None:
                try:
                    child, twin = await self._fork_checked(lambda reseed: self.tree.step(snap, i, reseed), snap, need)
                finally:
                    self.pool.reserved -= need
                    gate.release()
                results[i] = (child, twin)
                self.pool.unvisited += 1
                ready[i].set()

            async def produce(nursery, batch: list[int] = batch) -> None:
                for i in batch:
                    await gate.acquire()
                    need = 2 if node.sid < self.opts.determinism_checks else 1
                    await self.pool.wait_room(need)
                    self.pool.reserved += need
                    nursery.start_soon(fork, i, need)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce, nursery)
                for i in batch:  # visited in the order forked, as they arrive (the snapshot budget holds)
                    await ready[i].wait()
                    child, twin = results.pop(i)
                    self.pool.unvisited -= 1
                    self.reduction.forked(node, {i: child.report})
                    if twin is not None:
                        await self._nondeterminism(node, i, child, twin)
                    new = self._visit(node, i, child)
                    if new is not None and self._expandable(new):
                        keep.append(new)
                        if self.opts.snapshot == "replay":
                            self.tree.release(child)
                            new.snap = None
                        else:
                            self.pool.resident[new.sid] = new
                    else:
                        self._drop(child)
            if self.stopped:
                self.frontier.setdefault(node.sid, node.depth)  # not all of it was taken
                break
            batch = self.reduction.more(node)
        self.pool.retire(node)
        return keep

    async def step_one(self, node: Node, index: int) -> Node | None:
        """Take one transition (random walks); the child is returned even if already seen."""
        assert node.snap is not None  # a walk steps from live snapshots only
        child = await self.tree.step(node.snap, index)
        await self.keys.observe(child, node.snap)
        # Each transition is counted and drawn once, however often the walks take it.
        taken = self.taken.setdefault(node.sid, set())
        again = index in taken
        taken.add(index)
        if len(taken) == len(node.report.transitions):
            self.frontier.pop(node.sid, None)
        new = self._visit(node, index, child, again)
        sid = self.seen.get(self._key(child))
        self._check_budget()
        if sid is None or child.report.ends(self.opts.deadlock) or child.report.constrained:
            if new is None:
                self._drop(child)
            return None
        path = None
        if new is None and self.symmetric:
            # A known state: under symmetry the walk may stand in another member of its orbit.
            info = node.report.transitions[index]
            path = self.path_of(node) + [Step(index, info.actor, info.label, info.where, child.report.fingerprint.hex())]
        return Node(sid, node.depth + 1, child, path)

    # -- bookkeeping ---------------------------------------------------------------

    def _held(self) -> set:
        return {snap for _, snap in self._violating}

    def _drop(self, snap: Snapshot) -> None:
        if snap not in self._held():
            self.tree.release(snap)

    def _open(self, rep: P.Report) -> bool:
        """Whether a state has transitions to explore: a violating state is an end (as a deadlock is)."""
        return bool(rep.transitions) and not rep.ends(self.opts.deadlock)

    def _expandable(self, node: Node) -> bool:
        return (self._open(node.report) and not node.report.constrained
                and (self.max_depth is None or node.depth < self.max_depth))

    def _key(self, snap: Snapshot) -> bytes:
        """What identifies the state of ``snap`` in the visited store (``keys.py``)."""
        return self.keys.key(snap)

    def add_root(self, snap: Snapshot) -> Node:
        # The root's report says (snapshots.py); page keys (fingerprint="pages") know no orbits.
        self.symmetric = list(getattr(self.tree, "symmetric", [])) if self.opts.fingerprint == "state" else []
        sid = self._add_state(snap.report, self._key(snap))
        self.reduction.reached(None, None, sid, True)
        node = Node(sid, 0, snap)
        self._record_violations(sid, snap)
        self._reached(sid, 0, snap.report)
        return node

    def _add_state(self, report: P.Report, key: bytes) -> int:
        if report.opaque and report.opaque not in self._opaque_warned:
            self._opaque_warned.add(report.opaque)
            self.warn(opaque_warning(report.opaque))
        sid = len(self.seen)
        self.seen[key] = sid
        self.graph.add_state(sid, report, self.opts.deadlock)
        return sid

    def _visit(self, parent: Node, index: int, child: Snapshot, again: bool = False) -> Node | None:
        """Record the transition; a Node if it reached a state to explore from, else None.

        That is a new state, or, under ``max_depth``, a known state that this
        path reaches in fewer steps than any before: the bound may have cut its
        descendants, so it is expanded again.  ``again`` says that the parent
        was expanded before, so this transition is already counted and drawn:
        ``transitions`` counts each transition of the graph once.
        """
        rep = child.report
        info = parent.report.transitions[index]
        if rep.model_error is not None:
            trace = self.path_of(parent) + [Step.of(index, info)]
            try:
                raise_model_error(rep, self.model)
            except ModelError as exc:
                raise ModelError(f"{exc} (reached by {self._trace(trace).token})") from None
        key = self._key(child)
        sid = self.seen.get(key)
        new = sid is None
        if new and self.opts.max_states is not None and len(self.seen) >= self.opts.max_states:
            # The budget is spent: this state stays unknown, so the graph is incomplete whatever is left.
            self._stop(f"max_states={self.opts.max_states} reached", lost=True)
            return None
        depth = parent.depth + 1
        if new:
            sid = self._add_state(rep, key)
            step = Step.of(index, info, rep.fingerprint.hex(), rep.arrived)
            if parent.path is None:
                self.parent[sid] = (parent.sid, step)
            else:
                self.paths[sid] = parent.path + [step]
            self.deepest = max(self.deepest, depth)
            if len(self.seen) % _DEPTH_WINDOW == 0:
                self._watch_depth()
        assert sid is not None  # a known state's number, or the one just added
        if new or not again:
            self.transitions += 1
            self._progress()
            self.graph.add_step(parent.sid, sid, Step.of(index, info, rep.fingerprint.hex(), rep.arrived))
        tag = self.reduction.reached(parent, index, sid, new)
        if new:
            self._record_violations(sid, child)
            self._reached(sid, depth, rep)
            return Node(sid, depth, child)
        if self.reexpand and depth < self.depth_of.get(sid, depth) and self._open(rep):
            self._reached(sid, depth, rep)
            node = Node(sid, depth, child)
            if self.symmetric:
                # Maybe another member of the orbit: expand the recorded state, rebuilt along its path
                # (and with its own report: the transitions of another member may be numbered otherwise).
                node.snap, node.stale = None, True
            return node
        if tag is not None and self._open(rep):
            # The reduction wakes transitions of this expanded state on this path: it is expanded again.
            self.frontier.setdefault(sid, depth)
            return Node(sid, depth, child, tag=tag)
        return None

    def _reached(self, sid: int, depth: int, rep: P.Report) -> None:
        """State ``sid`` was reached at ``depth`` (its smallest yet): it is to expand, if it can be."""
        if self.reexpand:
            self.depth_of[sid] = depth
        if self._open(rep):
            if rep.constrained:
                self.cut.setdefault(rep.constrained, set()).add(sid)  # reached, checked, not expanded
            else:
                self.frontier[sid] = depth

    def _watch_depth(self) -> None:
        """Say once when the depth grew with nearly every new state of the last window: likely infinite."""
        grew = self.deepest - self._depth_mark
        self._depth_mark = self.deepest
        if self.hint or grew < 0.9 * _DEPTH_WINDOW:
            return
        self.hint = unbounded_hint(self.deepest, len(self.seen))
        self.warn(UnboundedWarning(self.hint))
        self._progress(force=True)

    def _stop(self, cause: str, lost: bool = False) -> None:
        """End the search; ``cause`` makes it incomplete if it leaves states unexpanded, or ``lost`` one."""
        self.stopped = True
        if cause not in self._stop_causes:
            self._stop_causes.append(cause)
        if lost and cause not in self._lost:
            self._lost.append(cause)

    @property
    def incomplete(self) -> list[str]:
        """Why the graph is not the whole reachable graph; empty when it is.

        A budget or a stop counts only if it left something unexplored: a
        search that finds its first violation in the last state it expands is
        complete, and ``max_depth`` counts only if states at the bound had
        transitions to take.
        """
        reasons: list[str] = []
        causes = self._stop_causes + ([f"interrupted by {self.interrupted}"] if self.interrupted else [])
        lost = self._lost + ([f"interrupted by {self.interrupted}"] if self.interrupted else [])
        left = self.frontier
        if self.opts.strategy == "random":
            if left:
                n = len(left)
                reasons.append(f"random walks left {n} state{'s' if n != 1 else ''} with transitions not taken")
            for name, sids in self.cut.items():
                reasons.append(f"constraint {name!r} cut {len(sids)} state{'s' if len(sids) != 1 else ''}")
            return reasons + causes + self._reasons
        for name, sids in self.cut.items():
            n = len(sids)
            reasons.append(f"constraint {name!r} cut {n} state{'s' if n != 1 else ''}")
        bound = self.max_depth
        cut = 0 if bound is None else sum(1 for d in left.values() if d >= bound)
        if cut:
            reasons.append(f"max_depth={bound} cut {cut} state{'s' if cut != 1 else ''}")
        rest = len(left) - cut
        if rest:
            what = " and ".join(causes) or "the search stopped"
            reasons.append(f"{what} with {rest} state{'s' if rest != 1 else ''} unexpanded")
        else:
            reasons += lost
        return reasons + self._reasons

    @property
    def complete(self) -> bool:
        return not self.incomplete

    def _record_violations(self, sid: int, snap: Snapshot) -> None:
        rep = snap.report
        found = [(v.kind, v.name, v.message, v.details) for v in rep.found(self.opts.deadlock)]
        if not found:
            return
        trace = self.trace_to(sid)
        known = {(v.kind, v.name) for v in self.violations}
        for kind, name, message, details in found:
            if (kind, name) in known:
                continue  # one counterexample per property: the first found (the shortest under BFS)
            v = Violation(kind, name, message, trace, details, None, repr(self.model),
                          deviations=self._deviations(trace))
            self.violations.append(v)
            self._violating.append((v, snap))
            if kind in _STATE_KINDS or sid not in self.parent:
                self._anchors.append((v, sid, []))
            else:  # what failed is the last transition: keep it, shorten the way to the state it leaves
                self._anchors.append((v, self.parent[sid][0], trace.steps[-1:]))
        if self.opts.stop_on_violation:
            self._stop("stopped at the first violation")

    def _progress(self, force: bool = False) -> None:
        cb = self.opts.progress
        if cb is None:
            return
        now = time.monotonic()
        if force or now >= self._next_progress:
            self._next_progress = now + 0.25
            info: dict[str, Any] = {"states": len(self.seen), "transitions": self.transitions, "violations": len(self.violations),
                                    "depth": self.deepest, "live_snapshots": len(self.tree.live),
                                    "seconds": now - self._started}
            if self.hint:
                info["hint"] = self.hint
            cb(info)

    async def _nondeterminism(self, parent: Node, index: int, child: Snapshot, twin: Snapshot) -> None:
        info = parent.report.transitions[index]
        a, b = await self.tree.describe(child), await self.tree.describe(twin)
        self.tree.release(twin)
        cause = _first_difference(a, b)
        trace = self._trace(self.path_of(parent) + [Step.of(index, info)])
        message = (f"actor {info.actor} reached different states when '{info.label}' was taken twice from the same "
                   f"state{': ' + cause if cause else ''}. It depends on {OUTSIDE_THE_MODEL}: make it a fc.choose() "
                   "or model state")
        if ("nondeterminism", info.actor) not in {(v.kind, v.name) for v in self.violations}:
            v = Violation("nondeterminism", info.actor, message, trace, "", a, repr(self.model),
                          deviations=self._deviations(trace))
            self.violations.append(v)
            self._anchors.append((v, parent.sid, trace.steps[-1:]))
        if self.opts.stop_on_violation:
            self._stop("stopped at the first violation")

    def _deviations(self, trace: Trace) -> int | None:
        """How far from FIFO an asyncio program's trace goes; None for other models."""
        return trace.deviations if self.model.program == "asyncio" else None

    def cut_by_bound(self, reason: str) -> None:
        """A bound of the strategy (``max_deviations``) left transitions untaken: the graph is incomplete."""
        if reason not in self._reasons:
            self._reasons.append(reason)

    def _check_budget(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self._stop(f"time_limit={self.opts.time_limit:g}s ran out")

    def trace_to(self, sid: int) -> Trace:
        steps = []
        while sid in self.parent:
            sid, step = self.parent[sid]
            steps.append(step)
        if sid in self.paths:  # first reached from a random walk's other member of an orbit (symmetry)
            steps.extend(reversed(self.paths[sid]))
        return self._trace(steps[::-1])

    def path_of(self, node: Node) -> list[Step]:
        """The steps that lead to the concrete state ``node`` holds."""
        return list(node.path) if node.path is not None else self.trace_to(node.sid).steps

    def _trace(self, steps: list[Step]) -> Trace:
        """A trace of this check: its token names the model and says how fingerprints were taken."""
        return Trace(steps, module=self.origin, model=self.found_on, symmetry=self.trace_symmetry)

    def shorten_traces(self) -> None:
        """Make every counterexample as short as the explored graph allows (SPIN's ``-i``, for free).

        A depth-first search reaches a violating state by the first path it
        tries, often a long one; a shortest path through the graph explored so
        far reaches the same state, by transitions whose positions the graph's
        edges record, so the shorter trace replays to the same fingerprints.
        For an invariant or a deadlock (a property of the state) the path
        leads to the violating state itself; for a failed transition
        (assertion, exception, crash, timeout, nondeterminism) to the state
        it was taken from, and that transition follows unchanged.  The counts
        are not touched.  Not under ``opaque='distinct'``, where a state's
        fingerprint is the hash of the path that reached it, nor under
        symmetry, where a node stands for an orbit and an edge's position is
        that of a transition in the member of the orbit it was taken from
        (another path reaches another member, whose transitions may be
        numbered otherwise).

        For an asyncio program a path is as short as it can be among those
        with the fewest deviations from FIFO (the search by deviations found
        one with the fewest; a shorter one may need more).
        """
        if self.opts.opaque == "distinct" or self.symmetric:
            return
        aio = self.model.program == "asyncio"
        for v, anchor, tail in self._anchors:
            if anchor not in self.graph:
                continue
            if aio:
                steps = self._fewest_deviations(anchor)
                if _cost(steps + tail) >= _cost(v.trace.steps):
                    continue
            else:
                nodes = nx.shortest_path(self.graph, 0, anchor)
                if len(nodes) - 1 + len(tail) >= len(v.trace):
                    continue
                steps = [self.graph.edges[a, b]["steps"][0] for a, b in zip(nodes, nodes[1:])]
            v.trace = self._trace(steps + tail)
            v.deviations = self._deviations(v.trace)

    def _fewest_deviations(self, anchor: int) -> list[Step]:
        """A path of the graph from the initial state to ``anchor``: the fewest deviations, then the fewest steps."""
        big = self.graph.number_of_nodes() + 1  # longer than any path: one deviation outweighs every step

        def weight(u: int, w: int, data: dict) -> int:
            return min(s.deviation for s in data["steps"]) * big + 1

        nodes = nx.shortest_path(self.graph, 0, anchor, weight=weight)
        return [min(self.graph.edges[a, b]["steps"], key=_deviation) for a, b in zip(nodes, nodes[1:])]

    async def describe_violations(self) -> None:
        for v, snap in self._violating:
            v.state = await self.tree.describe(snap)

    async def describe_loops(self) -> None:
        """Describe the state of each liveness counterexample: where its loop starts, or where its run ends.

        That state's process is gone by now: one fork of the root replays the
        steps to it (within ``max_snapshots``), and it is described if it
        reaches the fingerprint the trace recorded.
        """
        for v in self.violations:
            if v.kind != "liveness" or v.state is not None:
                continue
            n = len(v.trace) if v.trace.cycle_start is None else v.trace.cycle_start
            root = self.tree.root
            assert root is not None  # the tree is started before the search
            if n == 0:
                v.state = await self.tree.describe(root)
                continue
            async with self.pool.slots(1):
                snap = await self.tree.step(root, tuple(s.index for s in v.trace.steps[:n]))
                try:
                    if snap.report.pid != 0 and snap.report.fingerprint.hex() == v.trace.steps[n - 1].fingerprint:
                        v.state = await self.tree.describe(snap)
                finally:
                    self.tree.release(snap)

    def max_shortest_depth(self) -> int:
        if not self.graph:
            return 0
        return max(nx.single_source_shortest_path_length(self.graph, 0).values())


async def run_search(search: Search, root: Snapshot) -> None:
    """Explore from ``root`` with the search's strategy, then describe violations and check liveness."""
    with search.tree.using(transition_timeout=search.opts.transition_timeout, on_fork_failure=search.pool.shrink,
                           footprints=search.reduction.footprints):
        await search.keys.start(search.tree, root)
        if root.report.properties and search.opts.reduction != "none":
            names = ", ".join(f"{kind} {name!r}" for kind, name, *_ in root.report.properties)
            raise UsageError(
                f"reduction={search.opts.reduction!r} cannot be combined with the liveness properties of this model "
                f"({names}) under fairness={search.opts.fairness!r}: a reduction may leave out the interleavings a "
                "liveness verdict needs; check them with reduction='none' (--reduction none)")
        if root.report.symmetric and search.opts.reduction != "none":
            # A sleep set names transitions by their position in one member of an orbit; another member
            # of the same state numbers them otherwise.  The two are not combined (docs/symmetry.md).
            sets = ", ".join(name for name, _ in root.report.symmetric)
            raise UsageError(
                f"reduction={search.opts.reduction!r} cannot be combined with symmetry (this model declares "
                f"fc.symmetric {sets}): use reduction='none' (--reduction none), or symmetry=False (--no-symmetry) "
                "to reduce by sleep sets or partial order instead")
        node = search.add_root(root)
        if search.stopped or not search._expandable(node):
            if root not in search._held():
                search.tree.release(root)
        elif search.model.program == "asyncio" and search.opts.strategy != "random":
            from .deviations import by_deviations

            await by_deviations(search, node)
        else:
            await STRATEGIES[search.opts.strategy](search, node)
    search.shorten_traces()
    await search.describe_violations()
    search._progress(force=True)
    if root.report.properties:
        from .liveness import analyze

        analyze(search, root.report.properties)
        await search.describe_loops()
    # The tokens name the model and say how their fingerprints were taken (replay takes them the same way).
    for t in [v.trace for v in search.violations] + list(search.discoveries.values()):
        if t is not None:
            t.module, t.model, t.symmetry = search.origin, search.found_on, search.trace_symmetry


#: Violations that depend on the state alone, not on the transition that reached it.
_STATE_KINDS = ("invariant", "deadlock")


def _deviation(step: Step) -> int:
    return step.deviation


def _cost(steps: list[Step]) -> tuple[int, int]:
    """How an asyncio program's counterexample ranks: its deviations from FIFO, then its length."""
    return sum(s.deviation for s in steps), len(steps)


def give_warnings(found: list[Warning]) -> None:
    """Give the warnings a check collected, attributed to the first caller outside forkcheck.

    The search may run in a helper thread (under Jupyter), whose stack does
    not reach the user's code: warnings wait until the check returns, and
    then point at the line that called it, not into forkcheck.
    """
    frame = sys._getframe(0)
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    for w in found:
        warnings.warn(w, stacklevel=level)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # forkcheck/


def attach_commands(violations: list[Violation], model: Model, transition_timeout: float | None = None) -> None:
    """Give each violation the shell command that replays it, where the model lives in a file."""
    target = shell_target(model)
    if target is not None:
        for v in violations:
            v.command = replay_command(target[0], v.trace.token, target[1], transition_timeout)


def origin_module(model: Model) -> str | None:
    """The module that defines the model, for trace tokens (:attr:`Trace.module`): None for the command line's own."""
    name = getattr(model.fn, "__module__", None)
    return name if isinstance(name, str) and name and not name.startswith(FILE_MODULE_PREFIX) else None


def unbounded_hint(depth: int, states: int, bounds: str = "max_depth / max_states") -> str:
    """The text of the UnboundedWarning: the depth grew with nearly every new state (Search._watch_depth).

    ``bounds`` names the options that bound the search otherwise (the Ray backend has only time_limit).
    """
    return (f"the depth grew with nearly every new state (depth {depth} after {states} states): the state space "
            "is likely infinite (a counter that grows forever, resending without a bound?); bound it with "
            f"fc.constraint(lambda: ...) in the setup function, or {bounds}")


def opaque_warning(type_name: str) -> OpaqueStateWarning:
    """The warning, once per type, that states holding a ``type_name`` are kept apart (opaque='distinct')."""
    return OpaqueStateWarning(
        f"states hold a {type_name}: with opaque='distinct' each of them is kept apart from every "
        "other state (never merged), so the counts grow and a loop is explored until max_depth, "
        "max_states or time_limit stops it")


def _first_difference(a: P.Description | None, b: P.Description | None) -> str:
    """Name the first variable whose value differs between two descriptions of 'the same' state."""
    if a is None or b is None:
        return ""
    for x, y in zip(a.actors, b.actors):
        for (fn, _, la), (_, _, lb) in zip(x.frames, y.frames):
            for name in la:
                if la.get(name) != lb.get(name):
                    return f"local {name!r} of {fn} in actor {x.name} was {la[name]} once and {lb.get(name)} the other time"
    for name in a.globals:
        if a.globals.get(name) != b.globals.get(name):
            return f"global {name!r} was {a.globals[name]} once and {b.globals.get(name)} the other time"
    if a.view != b.view:
        return f"the state was {a.view} once and {b.view} the other time"
    return ""


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one: the explorer holds a socket per snapshot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def default_max_snapshots() -> int:
    """How many snapshot processes this machine can hold: pids, process and file limits, free memory."""
    limits = []
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
        running = sum(1 for n in os.listdir("/proc") if n.isdigit())
        limits.append((pid_max - running) * 0.8)
    except OSError:  # pragma: no cover - not Linux
        pass
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if nproc != resource.RLIM_INFINITY and os.geteuid() != 0:
        limits.append(nproc * 0.8)
    limits.append((raise_fd_limit() - 64) * 0.9)
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
        limits.append(avail / (2 << 20))  # 2 MiB a snapshot: private pages, page tables, kernel structures
    except (OSError, StopIteration):  # pragma: no cover
        pass
    return max(16, int(min(limits)))


def _trio_run(fn: Callable, *args: Any) -> Any:
    """trio.run, re-raising the error itself rather than a one-error group from a nursery."""
    try:
        return trio.run(fn, *args)
    except BaseExceptionGroup as group:
        exc: BaseException = group
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if exc is group:
            raise
        raise exc from None


def run_sync(fn: Callable, *args: Any) -> Any:
    """``trio.run`` here, or in a helper thread when this thread already runs an event loop (Jupyter)."""
    try:
        loop_running = asyncio.get_running_loop() is not None
    except RuntimeError:
        loop_running = False
    try:
        trio.lowlevel.current_trio_token()
        loop_running = True
    except RuntimeError:
        pass
    if not loop_running:
        return _trio_run(fn, *args)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = _trio_run(fn, *args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="forkcheck-explorer", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def check(model: Any, options: CheckOptions | None = None, **kw: Any) -> CheckResult:
    """Explore ``model`` with ``options``, the keywords replacing its fields; see :meth:`forkcheck.Model.check`."""
    model = as_model(model)
    opts = CheckOptions.parse(options, **kw)
    if opts.max_deviations is not None and model.program != "asyncio":
        raise UsageError(f"max_deviations={opts.max_deviations} applies to asyncio programs (@fc.asyncio_model), "
                         f"and {model!r} is a @fc.model: drop it")
    if opts.max_deviations is not None and opts.strategy == "random":
        raise UsageError(f"max_deviations={opts.max_deviations} cannot be combined with strategy='random' (random "
                         "walks take any step): use strategy='dfs' or 'bfs', which go by increasing deviations")
    if opts.reduction != "none" and model.program == "asyncio":
        # An asyncio program's steps are callbacks of one event loop that all touch its queues: the
        # footprints a reduction needs are not computed for them (docs/reductions.md, "Limits").
        raise UsageError(f"reduction={opts.reduction!r} cannot be combined with an asyncio program "
                         f"(@fc.asyncio_model {model!r}): its steps all share the event loop; use reduction='none' "
                         "(--reduction none), and max_deviations to bound the schedules")
    if opts.backend == "ray":
        if model.program == "asyncio":
            raise UsageError(f"backend='ray' does not run asyncio programs yet (@fc.asyncio_model {model!r}): "
                             "use backend='local'")
        from .distributed.driver import check_ray  # loads nothing of Ray until a cluster is asked for

        return check_ray(model, opts)
    tree = SnapshotTree(model, opts.transition_timeout, huge_pages=opts.uses_huge_pages, opaque=opts.opaque,
                        queue_order=opts.max_deviations is not None,
                        symmetry=opts.symmetry and opts.fingerprint == "state")  # pages: keys are no fingerprints
    tree.memory_limit = opts.memory_limit
    search = Search(tree, model, opts)
    tree.footprints = search.reduction.footprints
    start = time.perf_counter()

    async def watch_sigterm(scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                search.interrupted = "SIGTERM"
                scope.cancel()
                return

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            if threading.current_thread() is threading.main_thread():
                nursery.start_soon(watch_sigterm, nursery.cancel_scope)
            await explore()
            nursery.cancel_scope.cancel()

    setup = [0.0]

    async def explore() -> None:
        root = await tree.start()
        setup[0] = time.perf_counter() - start
        await run_search(search, root)

    try:
        run_sync(main)
    except KeyboardInterrupt:
        search.interrupted = "SIGINT"
    finally:
        tree.close()
    stats = Stats(
        states=len(search.seen),
        transitions=search.transitions,
        max_depth=search.max_shortest_depth(),
        seconds=time.perf_counter() - start,
        setup_seconds=setup[0],
        memory=tree.memory.stats(tree.peak),
        reduction=search.reduction.name,
        skipped=search.reduction.skipped(),
        symmetry=dict(search.symmetric),
    )
    attach_commands(search.violations, model, opts.transition_timeout)
    result = CheckResult(search.violations, stats, search.graph, incomplete=search.incomplete,
                         model=repr(model), discoveries=search.discoveries)
    give_warnings(search.warnings)
    if search.interrupted:
        raise Interrupted(result, search.interrupted)
    return result


#: Why a trace may not replay, the likeliest first (the end of every NondeterminismError of replay).
_REPLAY_CAUSES = (
    "Likeliest causes: the model's arguments differ from the check that found the trace (on the command line, "
    "give the same TARGET and --arg values as the check that printed the token); the model changed since; "
    f"an actor reads {OUTSIDE_THE_MODEL}")
_OUTSIDE = f"an actor reads {OUTSIDE_THE_MODEL}"


def replay_causes(trace: Trace, model: Model) -> str:
    """Why ``trace`` may not replay on ``model``, the likeliest first: the token says what it was found on."""
    found, now = trace.model, bound_repr(model)
    if not found:  # a token made before tokens said it, or by hand
        return _REPLAY_CAUSES
    if found != now:
        return (f"Likeliest cause: the trace was found on {found} and this replay runs {now}: replay it on {found} "
                f"(on the command line, with the --arg values that give it); else the model changed since, or "
                f"{_OUTSIDE}")
    return f"Likeliest causes (it was found on the same {now}): the model changed since; {_OUTSIDE}"


def replay(model: Any, token: str | Trace, *, transition_timeout: float = 30.0) -> Replay:
    """The engine of :func:`forkcheck.replay`, documented there (it keeps trio out of ``import forkcheck``)."""
    model = as_model(model)
    # The check's own validation, so that a bad value reads as it would there.
    transition_timeout = CheckOptions(transition_timeout=transition_timeout).transition_timeout
    trace = token if isinstance(token, Trace) else Trace.from_token(token)
    causes = replay_causes(trace, model)
    # A trace found with opaque="distinct" passes states fingerprinted by their path; one found
    # without it passes none that hold an opaque object, so replaying this way suits both.
    tree = SnapshotTree(model, transition_timeout, opaque="distinct", symmetry=trace.symmetry)

    async def main() -> Replay:
        node = await tree.start()
        initial = await tree.describe(node)
        fingerprints = [node.report.fingerprint.hex()]  # of the states the trace passes, the initial one first
        steps: list[ReplayStep] = []
        notes: list[str] = []
        for k, st in enumerate(trace, 1):
            trs = node.report.transitions
            enabled = "; ".join(f"{t.actor}: {t.label}" for t in trs) or "none"
            if not 0 <= st.index < len(trs):
                raise NondeterminismError(
                    f"step {k} of the trace takes '{st.actor}: {st.label}' (transition {st.index + 1}), but the "
                    f"replayed state enables {len(trs)}: {enabled}. {causes}")
            info = trs[st.index]
            same_text = info.actor == st.actor and info.label == st.label
            if not same_text and not st.fingerprint:
                # Without a fingerprint to compare (a hand-made trace), the label is all there is to go by.
                raise NondeterminismError(
                    f"step {k} of the trace takes '{st.actor}: {st.label}', but the replayed state enables: "
                    f"{enabled}. {causes}")
            child = await tree.step(node, st.index)
            tree.release(node)
            if child.report.model_error is not None:
                done = Replay(steps, initial, [], trace.cycle_start, notes)
                try:
                    raise_model_error(child.report, model)
                except (ModelError, UsageError) as exc:
                    err = type(exc)(f"step {k} of the trace ('{info.actor}: {info.label}'): {exc}")
                    err.replay = done  # type: ignore[union-attr]  # an attribute these errors carry from here
                    raise err from None
            fp = child.report.fingerprint.hex()
            if st.fingerprint and not fp.startswith(st.fingerprint) and child.report.pid != 0:
                raise NondeterminismError(
                    f"step {k} of the trace ('{st.actor}: {st.label}') led to a different state than when the trace "
                    f"was found. {causes}")
            if not same_text:
                notes.append(f"step {k}: the trace says '{st.actor}: {st.label}', the replay took "
                             f"'{info.actor}: {info.label}' to the same state (a label or an actor name reads "
                             "differently, for instance after an edit of a repr)")
            desc = await tree.describe(child)
            viol = [(v.kind, v.name, v.message) for v in child.report.found(deadlock=True)]
            steps.append(ReplayStep(info.actor, info.label, info.where, desc, fp, viol, info.deviation, child.report.arrived))
            fingerprints.append(fp)
            node = child
        cycle = trace.cycle_start
        if cycle is not None:
            if not 0 <= cycle < len(steps):
                raise NondeterminismError(f"the trace is a lasso whose loop starts at step {cycle + 1}, but it has "
                                          f"{len(steps)} steps: the token is damaged; copy the whole token from the report")
            if fingerprints[-1] != fingerprints[cycle]:
                raise NondeterminismError(
                    f"the trace is a lasso whose loop starts at step {cycle + 1}, but its last step does not lead "
                    f"back to the state that loop starts from. {causes}")
        return Replay(steps, initial, steps[-1].violations if steps else [], cycle, notes)

    try:
        return run_sync(main)
    finally:
        tree.close()
