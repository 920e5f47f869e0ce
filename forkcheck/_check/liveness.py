"""Liveness properties, checked exactly on the state graph after exploration.

Declaring (in the snapshot process, during setup): :func:`eventually`,
:func:`always_eventually`, :func:`leads_to` and :func:`sometimes` append a
small :class:`_Property` to ``World.liveness``.  Its predicates are evaluated
in every state (``_snapshot.make_report`` stores them as the node attribute
``labels``) and its :meth:`_Property.spec` tells the explorer what to check.

Checking (in the explorer): :func:`analyze` runs once the graph is built.

Runs
    A run is an infinite path of the state graph, or a finite path that ends
    in a *terminal* state (no transition enabled: every actor returned, or a
    blocked state when ``deadlock=False``).  States with a safety violation
    (including deadlocks when ``deadlock=True``) are left out: such a run is
    already reported by its safety violation and is not judged again.

Fairness (``check(fairness=...)``), per actor, never per ``fc.choose`` option
    ``"weak"`` (default): an actor enabled in every state of a loop moves in
    that loop.  ``"strong"``: an actor enabled in some state of a loop moves in
    it.  ``"none"``: no assumption.  The environment (the drops of a
    ``fc.Network(lossy=True)``, named after the network) is never assumed fair:
    it may act or not, as an adversary; its transitions still make up runs.

Algorithm
    Every property is reduced to "is there a run that, from a *trigger* state
    on, stays in states where the goal ``Q`` is false forever?" (eventually:
    trigger = the initial state, ``Q`` = pred; always_eventually: trigger = any
    state, ``Q`` = pred; leads_to: trigger = a ``p`` and not ``q`` state,
    ``Q`` = q).  In the subgraph ``H`` of states where ``Q`` is false, the bad
    ends are terminal states and the fair strongly connected components
    (networkx SCCs; weak: every fair actor enabled in all states of the SCC has
    an edge inside it; strong: Emerson-Lei refinement, removing states where an
    actor is enabled that has no edge inside, until stable).  A reverse BFS from
    the bad ends and a BFS from the initial state give the shortest lasso; its
    loop is built inside the fair component by walking to an edge of every
    actor fairness requires, then back to the loop's first state.
"""

from __future__ import annotations

import linecache
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._errors import InternalError, UsageError
from .._results import Violation
from .._app.runtime import _callable_name, current_world
from .._trace import Step, Trace

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

__all__ = ["eventually", "always_eventually", "leads_to", "sometimes", "analyze", "LivenessNotChecked"]

_FAIRNESS_TEXT = {"weak": "under weak fairness", "strong": "under strong fairness", "none": "with no fairness assumption"}


class LivenessNotChecked(UserWarning):
    """The graph was incomplete, so liveness properties were not judged (see the message)."""


# --------------------------------------------------------------------------- declaring (snapshot process)


class _Property:
    """A declared liveness property: what ``World.liveness`` holds.

    ``labels()`` evaluates the predicates in the current state; ``spec()`` is
    the picklable ``(kind, name, keys)`` the explorer checks; the fingerprint
    sees only the predicates (their closures are state, as for invariants).
    """

    __slots__ = ("kind", "name", "keys", "preds")

    def __init__(self, kind: str, name: str, keys: tuple[str, ...], preds: tuple[Callable[[], Any], ...]) -> None:
        self.kind = kind
        self.name = name
        self.keys = keys
        self.preds = preds

    def labels(self) -> dict[str, bool]:
        return {key: bool(pred()) for key, pred in zip(self.keys, self.preds)}

    def spec(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.kind, self.name, self.keys)

    def __fc_state__(self):
        return self.preds

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name!r}>"


def _default_name(fn: Any) -> str:
    """``lambda: <its body>`` when the source is at hand (two lambdas on a line stay apart), else its name."""
    code = getattr(fn, "__code__", None)
    if getattr(fn, "__name__", None) == "<lambda>" and code is not None:
        try:
            pos = [p for p in code.co_positions() if None not in p and p[2:] != (0, 0)]  # (0, 0): RESUME
            (l0, c0), (l1, c1) = min((p[0], p[2]) for p in pos), max((p[1], p[3]) for p in pos)
            lines = [linecache.getline(code.co_filename, n).encode() for n in range(l0, l1 + 1)]  # columns count bytes
            if all(lines):
                lines[-1] = lines[-1][:c1]
                lines[0] = lines[0][c0:]
                body = " ".join(part.decode(errors="replace").strip() for part in lines)
                if body:
                    return f"lambda: {body}"[:80]
        except (ValueError, IndexError):  # pragma: no cover - odd code objects: fall back to the plain name
            pass
    return _callable_name(fn)


def _declare(kind: str, preds: tuple, name: str | None, default_name: Callable[[], str]) -> None:
    what = f"fc.{kind}()"
    world = current_world(what)
    for pred in preds:
        if not callable(pred):
            raise UsageError(f"{what} needs zero-argument callables, got {type(pred).__name__}: write {what[:-1]}lambda: ...)")
    if not world.in_setup:
        raise UsageError(f"{what} must be called in the model's setup function, not inside an actor")
    if name is not None and (not isinstance(name, str) or not name):
        raise UsageError(f"{what} got name={name!r}: give a non-empty string, or leave it out")
    name = name or default_name()
    keys = (name,) if len(preds) == 1 else (f"{name} [p]", f"{name} [q]")
    for other in world.liveness:
        if other.name == name or set(other.keys) & set(keys):
            raise UsageError(f"{what}: a liveness property named {name!r} is already declared; give each one its own name=")
    world.liveness.append(_Property(kind, name, keys, preds))


def eventually(pred: Callable[[], Any], name: str | None = None) -> None:
    """Declare that every run reaches a state where ``pred()`` is true.

    Call it in the setup function.  A run that loops forever (under the
    ``fairness`` of :meth:`forkcheck.Model.check`) or ends without ever
    reaching such a state is a violation of kind ``"liveness"``, with a lasso
    trace whose loop starts at ``trace.cycle_start``.

    Parameters
    ----------
    pred : callable
        Zero-argument predicate over the model state, evaluated in every state.
    name : str, optional
        The property's name in violations (default: the predicate's name or
        source); names must be unique among liveness properties.

    Raises
    ------
    forkcheck.UsageError
        Outside a model's setup function, or if ``pred`` is not callable.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def hog():
    ...     s = {"done": False}
    ...     async def spinner():
    ...         while True:
    ...             await fc.checkpoint()
    ...     async def worker():
    ...         await fc.checkpoint()
    ...         s["done"] = True
    ...     fc.spawn(spinner); fc.spawn(worker)
    ...     fc.eventually(lambda: s["done"], name="worker done")
    >>> hog.check().ok                       # weak fairness: the worker moves
    True
    >>> v = hog.check(fairness="none").violations[0]
    >>> v.kind, v.name, v.trace.cycle_start, [s.actor for s in v.trace]
    ('liveness', 'worker done', 0, ['spinner'])
    """
    _declare("eventually", (pred,), name, lambda: _default_name(pred))


def always_eventually(pred: Callable[[], Any], name: str | None = None) -> None:
    """Declare that ``pred()`` holds infinitely often on every run.

    A run that from some point on stays forever in states where ``pred`` is
    false is a violation.  A finite run (every actor returned) satisfies it
    when ``pred`` holds in its last state.

    Parameters
    ----------
    pred : callable
        Zero-argument predicate over the model state.
    name : str, optional
        The property's name (default: the predicate's name or source).

    Raises
    ------
    forkcheck.UsageError
        Outside a model's setup function, or if ``pred`` is not callable.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def blinker():
    ...     s = {"on": False}
    ...     async def toggle():
    ...         while True:
    ...             s["on"] = not s["on"]
    ...             await fc.checkpoint()
    ...     fc.spawn(toggle)
    ...     fc.always_eventually(lambda: s["on"], name="light on")
    >>> blinker.check().ok
    True
    """
    _declare("always_eventually", (pred,), name, lambda: _default_name(pred))


def leads_to(p: Callable[[], Any], q: Callable[[], Any], name: str | None = None) -> None:
    """Declare that whenever ``p()`` holds, ``q()`` holds then or later.

    A run with a state where ``p`` holds, after which ``q`` is false forever
    (a fair loop, or the end of a finite run), is a violation.

    Parameters
    ----------
    p, q : callable
        Zero-argument predicates over the model state.
    name : str, optional
        The property's name (default: ``"<p> leads to <q>"``).

    Raises
    ------
    forkcheck.UsageError
        Outside a model's setup function, or if ``p`` or ``q`` is not callable.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def greedy():
    ...     lock = fc.Lock("L")
    ...     s = {"wants": False, "got": False}
    ...     async def hog():
    ...         while True:
    ...             async with lock:
    ...                 await fc.checkpoint()
    ...     async def polite():
    ...         s["wants"] = True
    ...         async with lock:
    ...             s["got"] = True
    ...     fc.spawn(hog); fc.spawn(polite)
    ...     fc.leads_to(lambda: s["wants"], lambda: s["got"], name="polite gets the lock")
    >>> greedy.check().violations[0].message.split(":")[0]
    "leads_to 'polite gets the lock' fails"
    >>> greedy.check(fairness="strong").ok   # polite is enabled infinitely often
    True
    """
    _declare("leads_to", (p, q), name, lambda: f"{_default_name(p)} leads to {_default_name(q)}")


def sometimes(pred: Callable[[], Any], name: str | None = None) -> None:
    """Ask for a witness: a reachable state where ``pred()`` is true.

    Not a requirement, so never a violation: ``result.discoveries[name]`` is
    a shortest path (in the explored graph) to such a state, or ``None`` if no
    explored state satisfies it.  The trace of the initial state is empty
    (and so falsy): compare with ``None``.

    Parameters
    ----------
    pred : callable
        Zero-argument predicate over the model state.
    name : str, optional
        The key in ``discoveries`` (default: the predicate's name or source).

    Raises
    ------
    forkcheck.UsageError
        Outside a model's setup function, or if ``pred`` is not callable.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def dice():
    ...     s = {"sum": 0}
    ...     async def roll():
    ...         die = await fc.choose([1, 2, 3])
    ...         s["sum"] += die
    ...     fc.spawn(roll); fc.spawn(roll)
    ...     fc.sometimes(lambda: s["sum"] == 6, name="double three")
    ...     fc.sometimes(lambda: s["sum"] == 7, name="seven")
    >>> r = dice.check()
    >>> [s.label for s in r.discoveries["double three"]], r.discoveries["seven"]
    (['choose 3', 'choose 3'], None)
    """
    _declare("sometimes", (pred,), name, lambda: _default_name(pred))


# --------------------------------------------------------------------------- checking (explorer)


def analyze(search: Any, properties: Iterable) -> None:
    """Judge the declared liveness properties on the finished graph of ``search``.

    Called by the explorer after exploration when the model declared any.
    Appends one violation of kind ``"liveness"`` per failing property to
    ``search.violations`` and fills ``search.discoveries`` for
    :func:`sometimes`.  If the graph is incomplete for any reason
    (``search.incomplete``: random walks, the search stopped at a safety
    violation, ``max_depth`` cut states, a budget ran out), no liveness
    verdict is given: a :class:`LivenessNotChecked` warning says why, and
    the result is incomplete.
    Witnesses of :func:`sometimes` are still reported (they are real paths).

    Parameters
    ----------
    search : forkcheck._check.search.Search
        The finished search: its ``graph``, ``opts.fairness`` and ``incomplete``.
    properties : iterable of tuple
        The ``spec()`` of each declared property: ``(kind, name, keys)``.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def never():
    ...     s = {"x": 0}
    ...     async def looper():
    ...         while True:
    ...             await fc.checkpoint()
    ...     fc.spawn(looper)
    ...     fc.eventually(lambda: s["x"] == 1, name="x is one")
    >>> print(never.check().violations[0].message)
    eventually 'x is one' fails: a run loops forever without it (cycle of 1 state) under weak fairness
    """
    g = _Graph(search)
    specs = [(str(k), str(n), tuple(keys)) for k, n, keys in properties]
    unwitnessed = []
    for kind, name, keys in specs:
        if kind == "sometimes":
            search.discoveries[name] = g.witness(keys[0])
            if search.discoveries[name] is None:
                unwitnessed.append(name)
    judged = [s for s in specs if s[0] != "sometimes"]
    reason = g.incomplete_reason()
    if reason is not None:
        if judged or unwitnessed:
            _mark_incomplete(search, reason)
            parts = []
            if judged:
                parts.append("liveness properties " + ", ".join(repr(n) for _, n, _ in judged) + " were not checked")
            if unwitnessed:
                parts.append("no witness was found for " + ", ".join(repr(n) for n in unwitnessed)
                             + " in the explored part (None is not conclusive)")
            warnings.warn(f"{'; '.join(parts)}: {reason}", LivenessNotChecked, stacklevel=2)
        return
    fairness = getattr(search.opts, "fairness", "weak")
    for kind, name, keys in judged:
        v = g.judge(kind, name, keys, fairness)
        if v is not None:
            search.violations.append(v)


def _mark_incomplete(search: Any, reason: str) -> None:
    """Make sure the result says it is incomplete (the reason may come from the graph's own frontier)."""
    notes = getattr(search, "_reasons", None)
    if isinstance(notes, list):
        if not search.incomplete:
            notes.append(reason)
    else:  # a stand-in search object (tests): a plain attribute
        search.complete = False


class _Graph:
    """The explored graph in the shape the analysis needs (plain dicts and sets)."""

    def __init__(self, search: Any) -> None:
        self.search = search
        self.G: nx.DiGraph = search.graph
        G = self.G
        interned: dict[frozenset, frozenset] = {}  # few distinct actor sets: share them

        def intern(items) -> frozenset:
            f = frozenset(items)
            return interned.setdefault(f, f)

        self.enabled: dict[int, frozenset] = {u: intern(d.get("enabled", ())) for u, d in G.nodes(data=True)}
        self.labels: dict[int, dict] = {u: d.get("labels") or {} for u, d in G.nodes(data=True)}
        self.violating = {u for u, d in G.nodes(data=True) if d.get("violations")}
        self.edge_actors: dict[tuple[int, int], frozenset] = {}
        env = set()
        for u, v, d in G.edges(data=True):
            steps = d.get("steps") or ()
            self.edge_actors[(u, v)] = intern([s.actor for s in steps])
            for s in steps:
                if not s.where:  # environment transitions have no source line
                    env.add(s.actor)
        self.env = frozenset(env)
        self.terminal = {u for u in G if not self.enabled[u] and u not in self.violating and G.out_degree(u) == 0}
        self._bfs: dict[int, int | None] | None = None
        self._depth: dict[int, int] | None = None

    # -- completeness -----------------------------------------------------------

    def incomplete_reason(self) -> str | None:
        search, G = self.search, self.G
        reasons = getattr(search, "incomplete", None)
        if reasons:
            text = "the graph is incomplete (" + "; ".join(reasons) + ")"
            if any(r.startswith("stopped at the first violation") for r in reasons):
                text += "; check with stop_on_violation=False / --keep-going to judge liveness too"
            if search.opts.strategy == "random":
                text += "; use strategy='bfs' or 'dfs' to judge liveness"
            return text
        if not search.complete:
            return "the exploration did not finish"
        if 0 not in G:
            return "there is no initial state"
        frontier = [u for u in G if self.enabled[u] and u not in self.violating and G.out_degree(u) == 0]
        if not frontier:
            return None
        opts = search.opts
        if search.stopped and opts.stop_on_violation and any(v.kind != "liveness" for v in search.violations):
            return ("the exploration stopped at the first safety violation (stop_on_violation=True); "
                    "check with stop_on_violation=False / --keep-going to judge liveness too")
        if opts.strategy == "random":
            return "random walks do not explore every transition; use strategy='bfs' or 'dfs'"
        if opts.max_depth is not None:
            return f"max_depth={opts.max_depth} left {len(frontier)} states unexpanded"
        return f"{len(frontier)} states were not expanded"

    # -- paths ----------------------------------------------------------------------

    def step(self, u: int, v: int, actor: str | None = None) -> Step:
        steps = self.G.edges[u, v]["steps"]
        if actor is not None:
            for s in steps:
                if s.actor == actor:
                    return s
        return steps[0]

    def bfs_from_initial(self) -> dict[int, int | None]:
        """Parent pointers of a BFS over the whole graph from state 0 (in BFS order; computed once)."""
        if self._bfs is not None:
            return self._bfs
        parent: dict[int, int | None] = {0: None}
        queue = deque([0])
        while queue:
            u = queue.popleft()
            for v in self.G.successors(u):
                if v not in parent:
                    parent[v] = u
                    queue.append(v)
        self._bfs = parent
        return parent

    @staticmethod
    def path_to(parent: dict, target: int) -> list[int]:
        nodes = [target]
        while parent[nodes[-1]] is not None:
            nodes.append(parent[nodes[-1]])
        return nodes[::-1]

    def witness(self, key: str) -> Trace | None:
        if 0 not in self.G:
            return None
        parent = self.bfs_from_initial()
        for u in parent:  # BFS order: the first hit is a shortest path
            if self.labels[u].get(key, False):
                nodes = self.path_to(parent, u)
                return Trace([self.step(a, b) for a, b in zip(nodes, nodes[1:])])
        return None

    # -- fair components ----------------------------------------------------------------

    def inside_actors(self, comp: set, H: nx.DiGraph) -> set:
        out: set = set()
        for u in comp:
            for v in H.successors(u):
                if v in comp:
                    out |= self.edge_actors[(u, v)]
        return out

    def nontrivial(self, comp: set, H: nx.DiGraph) -> bool:
        if len(comp) > 1:
            return True
        (u,) = comp
        return H.has_edge(u, u)

    def fair_components(self, H: nx.DiGraph, fairness: str) -> list[set]:
        """The components of H in which a fair run can stay forever (and visit every state)."""
        import networkx as nx

        found = []
        work = [set(c) for c in nx.strongly_connected_components(H)]
        while work:
            comp = work.pop()
            if not self.nontrivial(comp, H):
                continue
            if fairness == "none":
                found.append(comp)
                continue
            inside = self.inside_actors(comp, H)
            if fairness == "weak":
                always = frozenset.intersection(*(self.enabled[u] for u in comp)) - self.env
                if always <= inside:
                    found.append(comp)
                continue
            sometimes_enabled = frozenset().union(*(self.enabled[u] for u in comp)) - self.env
            starved = sometimes_enabled - inside
            if not starved:
                found.append(comp)
                continue
            rest = {u for u in comp if not (self.enabled[u] & starved)}
            if rest:
                work.extend(set(c) for c in nx.strongly_connected_components(H.subgraph(rest)))
        return sorted(found, key=min)

    # -- judging ----------------------------------------------------------------------------

    def judge(self, kind: str, name: str, keys: tuple, fairness: str) -> Violation | None:
        lab = self.labels
        goal = keys[-1]
        ok_states = [u for u in self.G if u not in self.violating]
        avoid = {u for u in ok_states if not lab[u].get(goal, False)}  # states where the goal is false
        if kind == "eventually":
            triggers, anywhere = ({0} & avoid), False
        elif kind == "always_eventually":
            triggers, anywhere = avoid, True
        elif kind == "leads_to":
            triggers, anywhere = {u for u in avoid if lab[u].get(keys[0], False)}, True
        else:  # pragma: no cover - specs come from _declare
            raise ValueError(f"unknown liveness property kind {kind!r}")
        if not triggers:
            return None
        import networkx as nx  # the explorer side only: snapshot processes never load it

        H = nx.DiGraph()
        H.add_nodes_from(sorted(avoid))
        H.add_edges_from((u, v) for u, v in self.edge_actors if u in avoid and v in avoid)
        comps = self.fair_components(H, fairness)
        comp_of = {u: i for i, c in enumerate(comps) for u in c}
        ends = sorted((self.terminal & avoid) | set(comp_of))
        if not ends:
            return None
        # Reverse BFS in H from the bad ends: distance and next hop towards the nearest one.
        dist: dict[int, int] = {e: 0 for e in ends}
        nxt: dict[int, int | None] = {e: None for e in ends}
        queue = deque(ends)
        while queue:
            v = queue.popleft()
            for u in H.predecessors(v):
                if u not in dist:
                    dist[u], nxt[u] = dist[v] + 1, v
                    queue.append(u)
        if anywhere:
            parent = self.bfs_from_initial()
            if self._depth is None:
                self._depth = {}
                for u in parent:  # BFS order: a parent comes before its children
                    self._depth[u] = 0 if parent[u] is None else self._depth[parent[u]] + 1
            depth = self._depth
        else:
            parent, depth = {0: None}, {0: 0}
        candidates = [(depth[t] + dist[t], t) for t in triggers if t in dist and t in depth]
        if not candidates:
            return None
        _, trigger = min(candidates)
        nodes = self.path_to(parent, trigger)
        trigger_at = len(nodes) - 1
        while nxt[nodes[-1]] is not None:
            nodes.append(nxt[nodes[-1]])
        steps = [self.step(a, b) for a, b in zip(nodes, nodes[1:])]
        entry = nodes[-1]
        model = repr(self.search.model)
        fair_text = _FAIRNESS_TEXT[fairness]
        head = f"{kind} {name!r} fails: "
        if entry not in comp_of:
            end = "every actor returned" if self.G.nodes[entry].get("done") else "no actor can move"
            n = len(steps)
            if kind == "eventually":
                msg = f"a run ends after {n} step{'s' * (n != 1)} ({end}) without it"
            elif kind == "always_eventually":
                msg = f"a run ends after {n} step{'s' * (n != 1)} ({end}) in a state where it is false"
            else:
                msg = f"{_when(trigger_at)} p holds, then the run ends after {n} step{'s' * (n != 1)} ({end}) without q"
            if kind == "eventually":
                details = f"The run stops in state {entry}; the predicate is false in every state of it."
            elif kind == "always_eventually":
                details = f"The run stops in state {entry}, where the predicate is false (and stays false)."
            else:
                details = (f"p holds in state {trigger} ({_when(trigger_at)}); q is false from there to state {entry}, "
                           "where the run stops.")
            return Violation("liveness", name, head + msg, Trace(steps), details, None, model)
        cycle_nodes, cycle_steps = self.fair_cycle(entry, comps[comp_of[entry]], H, fairness)
        k = len(set(cycle_nodes))
        loop = f"cycle of {k} state{'s' * (k != 1)}"
        if kind == "eventually":
            msg = f"a run loops forever without it ({loop}) {fair_text}"
        elif kind == "always_eventually":
            msg = f"a run loops forever where it never holds ({loop}) {fair_text}"
        else:
            msg = f"{_when(trigger_at)} p holds, then a run loops forever without q ({loop}) {fair_text}"
        trace = Trace(steps + cycle_steps, cycle_start=len(steps))
        details = self.explain_cycle(cycle_nodes, cycle_steps, fairness)
        if kind == "leads_to":
            details = f"p holds in state {trigger} ({_when(trigger_at)}); q is false from there on.\n" + details
        return Violation("liveness", name, head + msg, trace, details, None, model)

    def fair_cycle(self, entry: int, comp: set, H: nx.DiGraph, fairness: str) -> tuple[list[int], list[Step]]:
        """A closed walk from ``entry`` inside ``comp`` that satisfies ``fairness``.

        Obligations are the fair actors that must move in the loop: weak, those
        enabled in every state visited so far; strong, those enabled in any.
        Each is met by walking to an edge of that actor (or, weak, to a state
        where it is disabled); then the walk returns to ``entry``.
        """
        states = [entry]
        steps: list[Step] = []
        moved: set = set()
        visited = {entry}
        cur = entry

        def obligations() -> set:
            if fairness == "none":
                return set()
            sets = [self.enabled[u] for u in visited]
            both = frozenset.intersection(*sets) if fairness == "weak" else frozenset().union(*sets)
            return set(both - self.env - moved)

        def walk(path: list[int], last_actor: str | None) -> None:
            nonlocal cur
            for i, (a, b) in enumerate(zip(path, path[1:])):
                st = self.step(a, b, last_actor if i == len(path) - 2 else None)
                steps.append(st)
                states.append(b)
                moved.add(st.actor)
                visited.add(b)
            cur = path[-1]

        while True:
            todo = obligations()
            if not todo:
                if steps and cur == entry:
                    break
                path = self.search_in(comp, H, cur, edge_goal=lambda u, v: v == entry)
                walk(path, None)
                continue
            actor = min(todo)
            state_goal = (lambda u: actor not in self.enabled[u]) if fairness == "weak" else None
            path = self.search_in(comp, H, cur, edge_goal=lambda u, v: actor in self.edge_actors[(u, v)],
                                  state_goal=state_goal)
            walk(path, actor)
            if actor not in moved and all(actor in self.enabled[u] for u in visited):
                raise InternalError(f"liveness: the loop from state {entry} could not schedule {actor}")  # pragma: no cover
        return states, steps

    def search_in(self, comp: set, H: nx.DiGraph, start: int, edge_goal: Callable[[int, int], bool],
                  state_goal: Callable[[int], bool] | None = None) -> list[int]:
        """Shortest path inside ``comp`` from ``start`` to a goal state, or through a goal edge."""
        parent: dict[int, int | None] = {start: None}
        queue = deque([start])
        while queue:
            u = queue.popleft()
            if state_goal is not None and u != start and state_goal(u):
                return self.path_to(parent, u)
            for v in sorted(H.successors(u)):
                if v not in comp:
                    continue
                if edge_goal(u, v):
                    return self.path_to(parent, u) + [v]
                if v not in parent:
                    parent[v] = u
                    queue.append(v)
        raise InternalError(f"liveness: no path from state {start} inside a strongly connected component")  # pragma: no cover

    def explain_cycle(self, nodes: list[int], steps: list[Step], fairness: str) -> str:
        moved = sorted({s.actor for s in steps})
        enabled = frozenset().union(*(self.enabled[u] for u in nodes))
        idle = sorted(enabled - set(moved))
        lines = [f"The loop goes through states {' -> '.join(str(u) for u in nodes)}.",
                 f"Actors that move in the loop: {', '.join(moved)}."]
        for a in idle:
            if a in self.env:
                why = "the environment is never assumed fair"
            elif fairness == "none":
                why = "no fairness is assumed"
            else:
                why = "it is not enabled in every state of the loop, so weak fairness does not force it to move"
            lines.append(f"{a} is enabled in the loop but never moves: {why}.")
        return "\n".join(lines)


def _when(index: int) -> str:
    return "in the initial state" if index == 0 else f"after step {index}"
