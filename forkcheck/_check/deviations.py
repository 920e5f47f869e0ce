"""The search of an asyncio program: by increasing number of deviations from the loop's FIFO order.

A transition of an asyncio program (``_app/aio.py``) is either *free*, the
step stock asyncio takes (the first ready callback, or time jumping to the
next timer when nothing is ready), or a *deviation*: another ready callback
first, or a timer firing early.  The search goes by levels: level ``d`` holds
the states that ``d`` deviations reach and no fewer.  It takes the free steps
of level ``d``'s states (depth first or breadth first, as ``strategy`` says),
and only when the level is closed their deviations, whose new states make
level ``d + 1``.  So:

* the first violation found needs the fewest deviations (0: stock asyncio
  runs it), and its trace has that many;
* every state is reached first by a path with its fewest deviations, so a
  bound (``max_deviations``) cuts exactly the states that need more, though
  states reached by different schedules merge;
* each state is expanded twice at most, once for its free steps and once for
  its deviations (kept alive in between, or rebuilt by the snapshot pool).

Transitions cut by the bound make the result incomplete.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .search import Node, Search


def _free(node: Node) -> list[int]:
    return [i for i, t in enumerate(node.report.transitions) if not t.deviation]


def _deviating(node: Node) -> list[int]:
    return [i for i, t in enumerate(node.report.transitions) if t.deviation]


async def by_deviations(search: Search, root: Node) -> None:
    """Explore from ``root`` level by level of deviations, up to ``max_deviations``."""
    bound = search.opts.max_deviations
    level, seeds = 0, [root]
    while seeds and not search.stopped:
        waiting = await _level(search, seeds)
        seeds = []
        if bound is not None and level >= bound:
            cut = 0
            for node in waiting:
                cut += 1
                search.frontier.pop(node.sid, None)
                search.discard(node)
            if cut:
                search.cut_by_bound(f"max_deviations={bound} cut the deviations of {cut} state{'s' * (cut != 1)}")
            return
        for start in range(0, len(waiting), max(1, search.jobs)):
            if search.stopped:
                return
            batch = waiting[start: start + max(1, search.jobs)]
            for children in await search.expand(batch, plans=[_deviating(n) for n in batch]):
                seeds.extend(children)
        level += 1


async def _level(search: Search, seeds: list[Node]) -> list[Node]:
    """Take the free steps from ``seeds`` and the states they reach; the states with deviations left, in order."""
    waiting: list[Node] = []
    breadth = search.opts.strategy == "bfs"
    queue: deque[Node] = deque(seeds)
    while queue and not search.stopped:
        if breadth:
            batch = [queue.popleft() for _ in range(min(len(queue), max(1, search.jobs)))]
        else:
            batch = [queue.pop()]
        todo, plans, keep = [], [], []
        for node in batch:
            if search.superseded(node):
                search.discard(node)
                continue
            free, deviating = _free(node), _deviating(node)
            if deviating:
                waiting.append(node)
            if free:
                todo.append(node)
                plans.append(free)
                keep.append(bool(deviating))
        if not todo:
            continue
        results = await search.expand(todo, plans=plans, keep=keep)
        if breadth:
            for children in results:
                queue.extend(children)
        else:
            for children in results:
                queue.extend(reversed(children))  # the first child is expanded first
    return waiting
