"""Search strategies: the order in which states are expanded.

A strategy is an ``async def strategy(search, root)`` that only talks to the
:class:`~forkcheck._check.search.Search` interface: ``search.expand(nodes)`` forks
every enabled transition of each node (at most ``jobs`` at once) and returns,
per node and in a deterministic order, the children that are new and still to
expand; ``search.step_one(node, i)`` takes a single transition; ``search.stopped``
says a budget or a violation has ended the search.
"""

from __future__ import annotations

import random
from collections import deque


async def dfs(search, root) -> None:
    """Depth first.  A node's children are forked together, then explored in order.

    Under ``max_depth`` a state reached again by a shorter path is expanded
    again (``search.expand`` returns it as a child), so that the search finds
    every state within the bound; a node left on the stack for a state that
    was since expanded from a shorter path is skipped.
    """
    stack = [iter([root])]
    while stack and not search.stopped:
        node = next(stack[-1], None)
        if node is None:
            stack.pop()
            continue
        if search.superseded(node):
            search.discard(node)
            continue
        (children,) = await search.expand([node])
        stack.append(iter(children))


async def bfs(search, root) -> None:
    """Breadth first: shortest counterexamples.  Up to ``jobs`` nodes of the frontier expand at once."""
    queue = deque([root])
    while queue and not search.stopped:
        batch = [queue.popleft() for _ in range(min(len(queue), max(1, search.jobs)))]
        for children in await search.expand(batch):
            queue.extend(children)


async def random_walks(search, root) -> None:
    """``walks`` random walks from the initial state, each at most ``max_depth`` (default 100) long."""
    rng = random.Random(search.seed)
    limit = search.max_depth if search.max_depth is not None else 100
    for _ in range(search.walks):
        node = root
        while not search.stopped and node.depth < limit:
            n = len(node.report.transitions)
            if n == 0:
                break
            child = await search.step_one(node, rng.randrange(n))
            if node is not root:
                search.release(node)
            node = child
            if node is None:
                break
        if node is not None and node is not root:
            search.release(node)
        if search.stopped:
            break
    search.release(root)


# The back of BFS's queue is expanded last: the snapshot pool evicts it first (read by Search).
bfs.evicts_newest = True  # type: ignore[attr-defined]

STRATEGIES = {"bfs": bfs, "dfs": dfs, "random": random_walks}
