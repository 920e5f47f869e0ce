"""Which of a state's enabled transitions the search takes: the piece beside the strategy.

A strategy decides the order in which states are expanded; a reduction
decides which transitions of an expanded state are forked (SimGrid keeps them
apart the same way: ``explo/`` and ``explo/reduction/``).

* ``NoReduction`` ("none") takes every transition: the full search.
* ``Reducer(sleep=True)`` ("sleep"): sleep sets stored with each state.  The
  same states are found; transitions that only reorder independent steps
  already explored are not forked.
* ``Reducer(sleep=True, persistent=True)`` ("por"): persistent sets with the
  cycle proviso, and sleep sets.  Fewer states are visited; every deadlock,
  every invariant violation and every failing step is still found.

What two transitions touch comes from the snapshots (``_app/footprint.py``,
``Report.footprint`` and ``Report.effects``); the rules, and why they are
sound, are in docs/reductions.md.  The interface ``Search.expand`` calls:

* ``to_expand(node)``: the first transitions to fork from ``node``;
* ``forked(node, children)``: their children's reports (before the search
  visits them: the sleep set each child arrives with is decided here);
* ``more(node)``: further transitions to fork (a persistent set grows as the
  footprints of the transitions forked so far come in), ``[]`` when done;
* ``reached(parent, index, sid, new)``: the child of ``parent``'s transition
  ``index`` is state ``sid``; returns a tag when ``sid``, already expanded,
  must be expanded again (transitions its stored sleep set held are awake on
  this path): ``Search`` then hands the child back as a node with that tag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from .. import _protocol as P
    from .search import Node

#: Root flags, as _app/footprint.py sets them.
UNKNOWN = 1
WORLD = 2

#: Operations that only read a primitive (an enabling test, len(box), lock.locked(), ...): they commute.
READS = frozenset({"g?", "a?", "w?", "r?", "rd"})

#: Pairs of operations by two actors on one primitive that commute in every state where both steps are
#: enabled (see docs/reductions.md, "The table"); any other pair with a write is dependent.
COMMUTE = frozenset({
    ("M", frozenset({"put", "get"})),  # a get is enabled: the mailbox is not empty, the put goes behind
    ("M", frozenset({"put", "g?"})),
    ("N", frozenset({"snd"})),  # in flight is a multiset (a set when duplicating)
    ("S", frozenset({"rel"})),  # counts add up in either order
    ("S", frozenset({"acq", "rel"})),  # an acquire is enabled: the count is positive
    ("S", frozenset({"rel", "a?"})),
    ("E", frozenset({"set"})),  # setting is idempotent
    ("E", frozenset({"set", "w?"})),  # a wait is enabled: the event is set already
})


def commute(kind: str, a: str, b: str) -> bool:
    """Whether operation ``a`` of one actor and ``b`` of another on one primitive of ``kind`` commute."""
    if a in READS and b in READS:
        return True
    return (kind, frozenset((a, b))) in COMMUTE


class Reduction(Protocol):
    """The interface ``Search.expand`` calls."""

    name: str
    #: Whether the snapshots report footprints (and children must be forked straight from their parent).
    footprints: bool

    def to_expand(self, node: Node) -> list[int]:
        """The positions, among ``node``'s enabled transitions, to fork first, in the order to fork them."""
        ...  # pragma: no cover

    def forked(self, node: Node, children: dict[int, P.Report]) -> None:
        """The reports of the children just forked from ``node``, before the search visits them."""
        ...  # pragma: no cover

    def more(self, node: Node) -> list[int]:
        """Further positions to fork from ``node``; ``[]`` when its expansion is complete."""
        ...  # pragma: no cover

    def reached(self, parent: Node | None, index: int | None, sid: int, new: bool) -> Any:
        """A tag if the known, expanded state ``sid`` must be expanded again from this child; else None."""
        ...  # pragma: no cover

    def skipped(self) -> int:
        """Transitions of expanded states that were not forked."""
        ...  # pragma: no cover


class NoReduction:
    """Every enabled transition of every state: the full search."""

    name = "none"
    footprints = False

    def to_expand(self, node: Node) -> list[int]:
        return list(range(len(node.report.transitions)))

    def forked(self, node: Node, children: dict[int, P.Report]) -> None:
        return None

    def more(self, node: Node) -> list[int]:
        return []

    def reached(self, parent: Node | None, index: int | None, sid: int, new: bool) -> Any:
        return None

    def skipped(self) -> int:
        return 0


# --------------------------------------------------------------------------- footprints


class Foot:
    """What one transition, taken in one state, touched.

    ``reads``: the shared mutable objects its actor can reach in that state (a
    static bound: the step may read any of them); ``writes``: those whose
    digest the step changed (exact); ``ops``: primitive id -> (kind, the
    operations the enabling test and the step made on it); ``world``: it
    spawned an actor or made a primitive; ``unknown``: nothing is known (no
    footprint, a crash, code the walk cannot follow): dependent on everything.
    """

    __slots__ = ("owner", "key", "reads", "writes", "ops", "world", "unknown", "visible", "end")

    def __init__(self, owner: int, key: str | None, reads: frozenset = frozenset(), writes: frozenset = frozenset(),
                 ops: dict | None = None, world: bool = False, unknown: bool = False) -> None:
        self.owner = owner
        self.key = key
        self.reads = reads
        self.writes = writes
        self.ops: dict[int, tuple[str, frozenset]] = ops or {}
        self.world = world
        self.unknown = unknown
        self.visible = unknown  # it may change what an invariant reads (set by foot())
        self.end = False  # it led to a state the search does not expand (a violation)

    def __repr__(self) -> str:  # pragma: no cover - for debugging
        return (f"Foot({self.owner}, {self.key!r}, reads={sorted(self.reads)}, writes={sorted(self.writes)}, "
                f"ops={self.ops}, world={self.world}, unknown={self.unknown})")


class Root:
    """A root's static footprint in a state: what its future steps may touch (``_app/footprint.compute``)."""

    __slots__ = ("objs", "ro", "reads", "prims", "flags", "guard")

    def __init__(self, data: tuple) -> None:
        objs, prims, flags, guard, ro = data
        self.objs = frozenset(objs)  # shared objects some reachable code can change: it may write them
        self.ro = frozenset(ro)  # shared objects no reachable code changes (it may still read them)
        self.reads = self.objs | self.ro
        self.prims = frozenset(p for p, _ in prims)
        self.flags = flags
        self.guard = guard


def _ops(entries, into: dict[int, tuple[str, set]]) -> bool:
    """Add logged operations to ``into``; True if one of them changed the world (spawn, names)."""
    world = False
    for kind, op, pid in entries:
        if kind == "W":
            world = True
            continue
        have = into.get(pid)
        if have is None:
            into[pid] = (kind, {op})
        else:
            have[1].add(op)
    return world


def foot(rep: P.Report, index: int, child: P.Report | None) -> Foot:
    """The footprint of transition ``index`` of the state of ``rep``, from the report of the child it led to."""
    owner = rep.owners[index] if rep.owners is not None else -1
    key = rep.keys[index] if rep.keys is not None else None
    if rep.footprint is None or child is None or child.effects is None or owner < 0:
        return Foot(owner, key, unknown=True)
    roots, _ = rep.footprint
    data = roots[owner] if owner < len(roots) else None
    if data is None:
        return Foot(owner, key, unknown=True)
    root = Root(data)
    if root.flags & UNKNOWN:
        return Foot(owner, key, unknown=True)
    written, logged = child.effects
    ops: dict[int, tuple[str, set]] = {}
    world = _ops(root.guard, ops)
    world = _ops(logged, ops) or world
    f = Foot(owner, key, root.reads, frozenset(written), {p: (k, frozenset(o)) for p, (k, o) in ops.items()}, world)
    f.visible = visible(f, rep.footprint[1])
    f.end = bool(child.violations)
    return f


def independent(a: Foot, b: Foot) -> bool:
    """Whether two transitions taken in the same state commute (and neither disables the other).

    A violating state is an end: the search does not go on from it.  So a
    transition that led to one is dependent on every other (the path that
    takes it first stops there), and so are two transitions that both may
    change what an invariant reads (together they may make a violating state
    that neither makes alone, which would end the other order's path).
    """
    if a.unknown or b.unknown or a.owner == b.owner or a.end or b.end:
        return False
    if a.visible and b.visible:
        return False
    if a.world and b.world:
        return False
    if not a.writes.isdisjoint(b.reads) or not a.writes.isdisjoint(b.writes) or not b.writes.isdisjoint(a.reads):
        return False
    if len(b.ops) < len(a.ops):
        a, b = b, a
    for pid, (kind, ops_a) in a.ops.items():
        other = b.ops.get(pid)
        if other is None:
            continue
        for x in ops_a:
            for y in other[1]:
                if not commute(kind, x, y):
                    return False
    return True


def conflicts(t: Foot, other: Root) -> bool:
    """Whether a transition may be dependent on some future step of a root that does not move in it.

    The other root may read or write any shared object it reaches and do
    anything to any primitive it reaches (static bounds), and spawn actors if
    its code can.
    """
    if t.unknown or other.flags & UNKNOWN:
        return True
    if t.world and other.flags & WORLD:
        return True
    if not other.objs.isdisjoint(t.reads) or not other.reads.isdisjoint(t.writes):
        return True
    prims = other.prims
    for pid in t.ops:
        if pid in prims:
            return True
    return False


def enables(other: Root, waiting: Root) -> bool:
    """Whether a root's future steps may enable a blocked root (change what its enabling test reads)."""
    if other.flags & UNKNOWN or waiting.flags & UNKNOWN:
        return True
    if not other.objs.isdisjoint(waiting.reads):
        return True
    for _, _, pid in waiting.guard:
        if pid in other.prims:
            return True
    return False


def visible(t: Foot, inv: tuple | None) -> bool:
    """Whether a transition may change what an invariant reads."""
    if t.unknown or inv is None:
        return True
    objs, prims, flags, ro = inv
    if flags & UNKNOWN:
        return True
    if not t.writes.isdisjoint(objs) or not t.writes.isdisjoint(ro):
        return True
    watched = {p for p, _ in prims}
    for pid, (_, ops) in t.ops.items():
        if pid in watched and not ops <= READS:
            return True
    return False


# --------------------------------------------------------------------------- sleep sets and persistent sets


class Asleep:
    """A transition in a sleep set: its name, its footprint, and the process whose object ids it uses."""

    __slots__ = ("key", "foot", "space")

    def __init__(self, key: str, foot: Foot, space: int) -> None:
        self.key = key
        self.foot = foot
        self.space = space  # the pid of the snapshot in which foot's ids are valid


class _State:
    __slots__ = ("sleep", "expanded", "taken", "persistent", "enabled")

    def __init__(self, sleep: dict[str, Asleep]) -> None:
        self.sleep = sleep  # the stored sleep set: transitions never taken from this state
        self.expanded = False
        self.taken: set[Any] = set()  # keys (or ("#", position), for transitions without a key) taken
        self.persistent: set | None = None  # keys of the persistent set chosen at expansion; None: all
        self.enabled = 0


class _Expansion:
    """One expansion of a node in progress."""

    __slots__ = ("node", "rep", "pid", "base", "asleep", "feet", "children", "order", "members", "done_members",
                 "phase", "full", "woken")

    def __init__(self, node: Node, rep: P.Report, base: dict[str, Asleep]) -> None:
        self.node = node
        self.rep = rep
        self.pid = rep.pid
        self.base = base  # the sleep set the node is expanded with
        self.asleep: dict[int, Asleep] = {}  # position -> its element, for the transitions asleep here
        self.feet: dict[int, Foot] = {}  # position -> footprint of a transition forked from the node
        self.children: dict[int, P.Report] = {}  # position -> the report of the child it led to
        self.order: list[int] = []  # positions in the order they were forked (siblings' order for sleep sets)
        self.members: list[int] = []  # persistent sets: the roots chosen
        self.done_members: set[int] = set()
        self.phase = "closure"
        self.full = False
        self.woken: list[int] | None = None  # re-expansion: positions to take


class Reducer:
    """Sleep sets (``sleep``), and persistent sets with the cycle proviso on top (``persistent``).

    ``status(report)`` is the search's: "new", "open" (known, not yet
    expanded) or "closed" (expanded, or being expanded) for the state a
    report describes.
    """

    footprints = True

    def __init__(self, sleep: bool = True, persistent: bool = False,
                 status: Callable[[P.Report], str] | None = None) -> None:
        self.sleep = sleep
        self.persistent = persistent
        self.name = "por" if persistent else "sleep"
        self.status = status or (lambda rep: "new")
        self.states: dict[int, _State] = {}
        self.arrivals: dict[tuple[int, int], dict[str, Asleep]] = {}  # (id(node), position) -> child's sleep set
        self.expansions: dict[int, _Expansion] = {}  # id(node) -> expansion in progress

    # -- the interface ------------------------------------------------------------

    def reached(self, parent: Node | None, index: int | None, sid: int, new: bool) -> Any:
        if parent is None or index is None:
            self.states[sid] = _State({})
            return None
        z = self.arrivals.pop((id(parent), index), {})
        if new:
            self.states[sid] = _State(dict(z) if self.sleep else {})
            return None
        st = self.states.get(sid)
        if st is None or not self.sleep:
            return None
        if not st.expanded:
            st.sleep = {k: e for k, e in st.sleep.items() if k in z}
            return None
        # Expanded already, with transitions asleep that this path does not put to sleep: take them now.
        woken = [k for k in st.sleep if k not in z and (st.persistent is None or k in st.persistent)]
        st.sleep = {k: e for k, e in st.sleep.items() if k in z}
        if not woken:
            return None
        return (z, woken)

    def to_expand(self, node: Node) -> list[int]:
        snap = node.snap
        rep = snap.report if snap is not None and snap.report is not None else node.report
        st = self.states.setdefault(node.sid, _State({}))
        keys = rep.keys or [None] * len(rep.transitions)
        tag = getattr(node, "tag", None)
        if tag is not None:  # expanded again: the transitions this path woke
            z, woken = tag
            ex = _Expansion(node, rep, z)
            wanted = set(woken)
            ex.woken = [i for i, k in enumerate(keys) if k in wanted and not self._taken(st, keys, i)]
            ex.phase = "woken"
            self.expansions[id(node)] = ex
            return self._take(ex, st, ex.woken)
        st.expanded = True
        st.enabled = len(rep.transitions)
        ex = _Expansion(node, rep, st.sleep)
        self.expansions[id(node)] = ex
        for i, k in enumerate(keys):
            e = st.sleep.get(k) if k is not None else None
            if e is not None:
                ex.asleep[i] = e
        if not self.persistent or rep.footprint is None or not rep.transitions:
            ex.phase = "done"
            st.persistent = None
            return self._take(ex, st, [i for i in range(len(keys)) if i not in ex.asleep])
        # A persistent set: start from one enabled root and close it.
        owners = rep.owners or []
        enabled_roots = sorted(set(owners))
        roots, _ = rep.footprint
        seed = min(enabled_roots, key=lambda r: (self._guard_size(roots, r), owners.count(r), r))
        ex.members = [seed]
        return self._take(ex, st, self._need(ex))

    def forked(self, node: Node, children: dict[int, P.Report]) -> None:
        ex = self.expansions.get(id(node))
        if ex is None:
            return
        for i in sorted(children):
            ex.children[i] = children[i]
            ex.feet[i] = foot(ex.rep, i, children[i])
        if not self.sleep:
            return
        # Each child's sleep set: the node's, and the siblings forked before it, that commute with it.
        for i in sorted(children):
            child = children[i]
            f = ex.feet[i]
            z: dict[str, Asleep] = {}
            if not f.unknown and child.pid != 0:
                for e in ex.base.values():
                    if e.space == ex.pid and independent(e.foot, f):
                        z[e.key] = Asleep(e.key, e.foot, child.pid)
                for j in ex.order:
                    if j == i:
                        break
                    g = ex.feet[j]
                    if g.key is not None and independent(g, f):
                        z[g.key] = Asleep(g.key, g, child.pid)
            self.arrivals[(id(node), i)] = z

    def more(self, node: Node) -> list[int]:
        ex = self.expansions.get(id(node))
        if ex is None:
            return []
        st = self.states[node.sid]
        out: list[int] = []
        if ex.phase == "closure":
            need = self._close(ex)
            if need:
                return self._take(ex, st, need)
            self._decide(ex, st)
            if ex.full:
                out = self._take(ex, st, [i for i in range(len(ex.rep.transitions))
                                          if i not in ex.asleep and i not in ex.order])
        elif ex.phase == "woken":
            ex.phase = "done"
            # Expanded again: the cycle proviso holds for the new edges too.
            if self.persistent and st.persistent is not None and \
                    any(self.status(ex.children[i]) == "closed" for i in ex.order if i in ex.children):
                st.persistent = None
                keys = ex.rep.keys or []
                out = self._take(ex, st, [i for i in range(len(ex.rep.transitions))
                                          if not self._taken(st, keys, i) and
                                          not (i < len(keys) and keys[i] is not None and keys[i] in ex.base)])
        if not out:
            del self.expansions[id(node)]
            for i in ex.order:  # the search visited every child: nothing is left for a node of that id
                self.arrivals.pop((id(node), i), None)
        return out

    @staticmethod
    def _taken(st: _State, keys: list, i: int) -> bool:
        k = keys[i] if i < len(keys) else None
        return (k if k is not None else ("#", i)) in st.taken

    def skipped(self) -> int:
        return sum(st.enabled - len(st.taken) for st in self.states.values() if st.expanded)

    # -- the persistent set ----------------------------------------------------------

    @staticmethod
    def _guard_size(roots: list, r: int) -> int:
        data = roots[r] if r < len(roots) else None
        return len(data[3]) if data is not None and len(data) > 3 else 0

    def _take(self, ex: _Expansion, st: _State, positions: list[int]) -> list[int]:
        keys = ex.rep.keys or []
        out = []
        for i in positions:
            if i in ex.feet or i in ex.order:
                continue
            out.append(i)
            ex.order.append(i)
            k = keys[i] if i < len(keys) else None
            st.taken.add(k if k is not None else ("#", i))
        return out

    def _transitions_of(self, ex: _Expansion, root: int) -> list[int]:
        owners = ex.rep.owners or []
        return [i for i, o in enumerate(owners) if o == root]

    def _foot_of(self, ex: _Expansion, i: int) -> Foot | None:
        f = ex.feet.get(i)
        if f is not None:
            return f
        e = ex.asleep.get(i)
        if e is not None and e.space == ex.pid:
            return e.foot
        return None

    def _need(self, ex: _Expansion) -> list[int]:
        """Transitions of the enabled members whose footprint is not known yet: to fork."""
        need = []
        for r in ex.members:
            for i in self._transitions_of(ex, r):
                if self._foot_of(ex, i) is None and i not in ex.order:
                    ex.asleep.pop(i, None)  # asleep with a footprint from another process: taken instead
                    need.append(i)
        return need

    def _close(self, ex: _Expansion) -> list[int]:
        """Grow the members until no root outside them can interfere; positions still to fork, or []."""
        rep = ex.rep
        assert rep.footprint is not None
        roots_data, _ = rep.footprint
        roots = {r: Root(d) for r, d in enumerate(roots_data) if d is not None}
        enabled_roots = set(rep.owners or [])
        while True:
            need = self._need(ex)
            if need:
                return need
            grew = False
            for r in list(ex.members):
                if r in ex.done_members:
                    continue
                ex.done_members.add(r)
                outside = [b for b in roots if b not in ex.members]
                if r in enabled_roots:
                    feet = [self._foot_of(ex, i) for i in self._transitions_of(ex, r)]
                    for b in outside:
                        if any(f is None or conflicts(f, roots[b]) for f in feet):
                            ex.members.append(b)
                            grew = True
                elif r in roots:  # blocked: whoever can enable it must be a member
                    for b in outside:
                        if enables(roots[b], roots[r]):
                            ex.members.append(b)
                            grew = True
                else:  # pragma: no cover - a member without a footprint
                    ex.full = True
                    return []
            if not grew:
                return []

    def _decide(self, ex: _Expansion, st: _State) -> None:
        """The closure is done: check the invisibility and cycle provisos; record the persistent set."""
        rep = ex.rep
        members = set(ex.members)
        chosen = [i for i, o in enumerate(rep.owners or []) if o in members]
        if len(chosen) == len(rep.transitions):
            ex.full = True
        else:
            _, inv = rep.footprint or (None, None)
            for i in chosen:
                f = self._foot_of(ex, i)
                if f is None or visible(f, inv):
                    ex.full = True
                    break
            else:
                # The cycle proviso: a transition of the set that leads to an expanded state (or this one)
                # could close a cycle of reduced states; then this state takes all of its transitions.
                for i in ex.order:
                    child = ex.children.get(i)
                    if child is not None and self.status(child) == "closed":
                        ex.full = True
                        break
        keys = rep.keys or []
        if ex.full:
            st.persistent = None
        else:
            st.persistent = {keys[i] for i in chosen if i < len(keys) and keys[i] is not None}
        ex.phase = "done"


#: The reductions by name, in the order messages list them.
REDUCTION_NAMES = ("none", "sleep", "por")


def make_reduction(name: str, status: Callable[[P.Report], str] | None = None) -> Reduction:
    """The reduction called ``name`` ("none", "sleep" or "por"); ``status`` is the search's (see :class:`Reducer`)."""
    if name == "none":
        return NoReduction()
    return Reducer(sleep=True, persistent=name == "por", status=status)
