"""An expanded state's process takes its last transition itself (search.IN_PLACE, Fork.in_place).

The optimisation saves one fork per expanded state and must change nothing
else: the same graph, counts, verdicts and traces with it on and off, and a
state whose process went on is rebuilt, when it is needed again, like an
evicted one.
"""

from __future__ import annotations

import pytest
import trio

import forkcheck as fc
from asyncio_lost_update import main as lost_update
from dining_philosophers import philosophers
from models import die_hard, tcommit
from mutex import peterson
from test_liveness import starvation
from two_phase import two_phase

from forkcheck._check import search as search_mod
from forkcheck._check.snapshots import SnapshotTree


def outcome(r):
    """Everything a check reports that the optimisation must leave alone."""
    return (r.stats.states, r.stats.transitions, r.stats.max_depth,
            sorted((u, v, tuple(d["labels"])) for u, v, d in r.graph.edges(data=True)),
            list(r.graph.nodes(data="fingerprint")),
            [(v.kind, v.name, v.trace.token) for v in r.violations], list(r.incomplete))


def steps_taken(monkeypatch) -> dict[str, int]:
    """Count the steps a check asks of its tree: forks, and transitions taken in place."""
    counts = {"fork": 0, "in_place": 0}
    step = SnapshotTree.step

    async def counting(self, snap, index, reseed=False, in_place=False):
        counts["in_place" if in_place else "fork"] += 1
        return await step(self, snap, index, reseed, in_place)

    monkeypatch.setattr(SnapshotTree, "step", counting)
    return counts


# Small models get a determinism check of their first 3 states only: its twins keep a state's process.
CASES = {
    "two_phase dfs": (two_phase(n=3), {"strategy": "dfs"}),
    "two_phase dfs jobs=2": (two_phase(n=3), {"strategy": "dfs", "jobs": 2, "determinism_checks": 0}),
    "two_phase bfs jobs=2": (two_phase(n=3), {"strategy": "bfs", "jobs": 2}),
    "two_phase symmetric": (two_phase(n=3, symmetric=True), {"strategy": "dfs"}),
    "two_phase max_depth": (two_phase(n=3), {"strategy": "dfs", "max_depth": 6}),
    # Under memory pressure expanded states are kept as factories to rebuild from: none goes on in place
    # once anything was evicted.
    "two_phase few snapshots": (two_phase(n=3), {"strategy": "bfs", "max_snapshots": 8}),
    "two_phase few snapshots dfs": (two_phase(n=3), {"strategy": "dfs", "max_snapshots": 12}),
    "two_phase replay": (two_phase(n=2), {"strategy": "dfs", "snapshot": "replay"}),
    "die_hard": (die_hard, {"strategy": "bfs", "stop_on_violation": False, "determinism_checks": 3}),
    "tcommit": (tcommit(n=3), {"strategy": "dfs", "determinism_checks": 3}),
    "philosophers": (philosophers(n=3), {"strategy": "dfs", "stop_on_violation": False}),
    "peterson": (peterson, {"strategy": "bfs", "determinism_checks": 3}),
    "starvation (liveness)": (starvation, {"strategy": "dfs", "determinism_checks": 0}),
    "asyncio lost update": (lost_update(n=3), {"strategy": "dfs", "stop_on_violation": False}),
    "asyncio by deviations": (lost_update(n=3), {"strategy": "bfs", "max_deviations": 1, "determinism_checks": 3}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_same_graph_counts_and_verdicts_with_and_without(name, monkeypatch):
    model, kw = CASES[name]
    counts = steps_taken(monkeypatch)
    on = model.check(**kw)
    taken = dict(counts)
    monkeypatch.setattr(search_mod, "IN_PLACE", False)
    counts.update(fork=0, in_place=0)
    off = model.check(**kw)
    assert outcome(on) == outcome(off)
    assert counts["in_place"] == 0
    if "few snapshots" in name:  # rebuilds: as many forks as the timing of evictions makes, none in place after one
        assert on.stats.memory.peak_snapshots <= kw["max_snapshots"]
    else:  # not a test that cannot fail: the optimisation did take transitions in place, each instead of a fork
        assert taken["in_place"] > 0, taken
        assert taken["fork"] + taken["in_place"] == counts["fork"]


def test_one_fork_less_per_expanded_state(monkeypatch):
    """two_phase(n=3), DFS, no determinism check: every expanded state but the root goes on in place."""
    counts = steps_taken(monkeypatch)
    r = two_phase(n=3).check(strategy="dfs", determinism_checks=0)
    expanded = sum(1 for sid in r.graph.nodes if r.graph.out_degree(sid))  # states with a transition: all 288
    assert (r.stats.states, r.stats.transitions) == (288, 1145)
    assert counts == {"fork": 1145 - (expanded - 1), "in_place": expanded - 1}


def test_the_determinism_check_still_forks_its_twins(monkeypatch):
    """States whose transitions are taken twice keep their process: the twin is forked after the child."""
    counts = steps_taken(monkeypatch)
    r = two_phase(n=3).check(strategy="dfs", determinism_checks=10_000)
    assert r.ok and counts["in_place"] == 0


def test_a_state_whose_process_went_on_is_rebuilt_like_an_evicted_one():
    """Its node has no process left; SnapshotPool.materialize rebuilds it from a live ancestor, to its fingerprint."""
    from forkcheck._check.options import CheckOptions

    model = two_phase(n=2)

    async def main() -> None:
        tree = SnapshotTree(model)
        try:
            search = search_mod.Search(tree, model, CheckOptions.parse(None, determinism_checks=0))
            root = search.add_root(await tree.start())
            (children,) = await search.expand([root])
            node = children[0]
            process = node.snap
            assert process is not None and node.report.transitions
            await search.expand([node])
            assert node.snap is None and process.closed  # its process took the last transition itself
            await search.pool.materialize(node, bytes.fromhex(search.graph.nodes[node.sid]["fingerprint"]))
            assert node.snap is not None and node.snap.pid != process.pid
            assert node.snap.report.fingerprint == process.report.fingerprint
            assert node.snap.gen == 1  # one fork of the root replayed the path
        finally:
            tree.close()

    trio.run(main)


def test_a_notebook_node_explored_from_stays_live():
    """The start node of Explorer.run is the search's root: never taken in place, still there afterwards."""
    with fc.Explorer(two_phase(n=2)) as ex:
        node = ex.root.step(0)
        r = ex.run("dfs", start=node)
        assert r.ok and r.stats.states > 3
        assert node.step(0).parent is node and node.eval(lambda state: 1) == 1
        assert ex.root.step(1).depth == 1


def test_a_transition_in_place_that_crashes_or_never_answers_is_reported(tmp_path):
    """The process that went on is the one that dies or hangs: a crash and a timeout, with their traces.

    (Whether the explorer kills the deaf process itself or the root's end does it is not told apart here.)
    """
    from test_hangs import run

    out, took = run(tmp_path, """
        import os, signal
        import forkcheck as fc
        from forkcheck._check.snapshots import SnapshotTree

        in_place = []
        step = SnapshotTree.step
        async def counting(self, snap, index, reseed=False, in_place_=False, **kw):
            in_place.append(kw.get("in_place", in_place_))
            return await step(self, snap, index, reseed, kw.get("in_place", in_place_))
        SnapshotTree.step = counting

        @fc.model
        def dies():
            async def a():
                await fc.checkpoint()
                await fc.checkpoint()  # state 1's one transition, taken in place
                os._exit(3)
            fc.spawn(a)

        @fc.model
        def deaf():
            async def a():
                await fc.checkpoint()
                await fc.checkpoint()
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
                while True:
                    pass
            fc.spawn(a)

        for model in (dies, deaf):
            in_place.clear()
            (v,) = model.check(transition_timeout=1, determinism_checks=0).violations
            print("KIND", v.kind, v.name, len(v.trace), in_place)
            print("MESSAGE", v.message)
    """)
    assert "KIND crash a 2 [False, True]" in out, out
    assert "KIND timeout a 2 [False, True]" in out and "so it was killed" in out, out
    assert took < 30
