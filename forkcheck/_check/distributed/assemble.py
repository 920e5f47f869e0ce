"""The state graph of a distributed search, put together from what the shards recorded.

Workers explore in no global order, so the shards' state numbers (gids) say
nothing about it.  The assembly walks the recorded transitions breadth first
from the initial state, each state's transitions in their order, and numbers
the states as it meets them: the numbering, the parent of each state and so
every counterexample are those of a local breadth-first search of the same
graph, whatever order the workers took.  Counterexamples are therefore
shortest, and equal to ``check(strategy="bfs")``'s, with any strategy.

Pure data in, pure data out: no Ray, no processes; ``tests/test_distributed.py``
runs it on graphs made by hand too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..._graph import StateGraph
from ..._trace import Step, Trace


@dataclass
class Assembled:
    """The graph and what the result needs of it; ``sid`` numbers are in breadth-first order."""

    graph: StateGraph
    transitions: int = 0
    max_depth: int = 0
    parent: dict[int, tuple[int, Step]] = field(default_factory=dict)
    found: dict[int, list[tuple[str, str, str, str]]] = field(default_factory=dict)  # sid -> violations
    faulty: set[int] = field(default_factory=set)  # states without a process (crash, timeout)
    unexpanded: list[int] = field(default_factory=list)  # expandable states the search did not expand
    opaque: list[str] = field(default_factory=list)  # types that opaque='distinct' kept apart, in order met
    cut: dict[str, int] = field(default_factory=dict)  # fc.constraint name -> states it kept from being expanded
    lost: int = 0  # recorded states that no recorded transition reaches (a stopped or failed search)

    def trace_to(self, sid: int) -> Trace:
        steps = []
        while sid in self.parent:
            sid, step = self.parent[sid]
            steps.append(step)
        return Trace(steps[::-1])


def assemble(dumps: list[dict[str, Any]], root_gid: int) -> Assembled:
    """Number the states breadth first from ``root_gid``; the graph of every recorded transition.

    ``dumps`` are the shards' :meth:`~forkcheck._check.distributed.shard.VisitedShard.dump`.
    """
    states: dict[int, tuple] = {}
    edges: dict[int, list] = {}
    pending: set[int] = set()
    for d in dumps:
        index, count = d["index"], d["count"]
        for k, rec in enumerate(d["states"]):
            states[index + count * k] = rec
        edges.update(d["edges"])
        pending.update(d["pending"])
    g = StateGraph()
    out = Assembled(g)
    sid_of: dict[int, int] = {}
    depth: dict[int, int] = {}

    def add(gid: int, d: int) -> int:
        sid = len(sid_of)
        sid_of[gid] = sid
        depth[sid] = d
        _fp, _parent, _step, _depth, (attrs, extra), found = states[gid]
        g.add_recorded(sid, attrs)
        if found:
            out.found[sid] = list(found)
        if extra.get("faulty"):
            out.faulty.add(sid)
        if extra.get("constrained"):
            out.cut[extra["constrained"]] = out.cut.get(extra["constrained"], 0) + 1
        op = extra.get("opaque")
        if op and op not in out.opaque:
            out.opaque.append(op)
        if gid in pending:
            out.unexpanded.append(sid)
        return sid

    add(root_gid, 0)
    queue = deque([root_gid])
    while queue:
        u = queue.popleft()
        su = sid_of[u]
        for index, actor, label, where, v, fp in sorted(edges.get(u, ()), key=lambda t: t[0]):
            step = Step(index, actor, label, where, fp)
            sv = sid_of.get(v)
            if sv is None:
                sv = add(v, depth[su] + 1)
                out.parent[sv] = (su, step)
                queue.append(v)
            g.add_step(su, sv, step)
            out.transitions += 1
    out.max_depth = max(depth.values())
    out.lost = len(states) - len(sid_of)
    return out
