"""Liveness properties, checked exactly on the state graph after exploration.

Declaring happens in the snapshot process (``forkcheck._app.properties``):
each state's report carries the truth of every declared predicate (the node
attribute ``labels``), and the root's report the properties' specs.

Checking (here, in the explorer): :func:`analyze` runs once the graph is built.

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

import warnings
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._errors import InternalError, LivenessNotChecked
from .._results import Violation
from .._trace import Step, Trace

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

__all__ = ["analyze"]

_FAIRNESS_TEXT = {"weak": "under weak fairness", "strong": "under strong fairness", "none": "with no fairness assumption"}


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
            warning = LivenessNotChecked(f"{'; '.join(parts)}: {reason}")
            if hasattr(search, "warn"):
                search.warn(warning)  # given when the check returns, at the caller's line
            else:  # a stand-in search object (tests)
                warnings.warn(warning, stacklevel=2)
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
                    self._depth[u] = 0 if (p := parent[u]) is None else self._depth[p] + 1
            depth = self._depth
        else:
            parent, depth = {0: None}, {0: 0}
        candidates = [(depth[t] + dist[t], t) for t in triggers if t in dist and t in depth]
        if not candidates:
            return None
        _, trigger = min(candidates)
        nodes = self.path_to(parent, trigger)
        trigger_at = len(nodes) - 1
        while (after := nxt[nodes[-1]]) is not None:
            nodes.append(after)
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
