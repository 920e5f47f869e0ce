"""No silent passes: a search that left states unexplored says so, and says why.

Issue 13, section 4: ``complete`` is False (and ``incomplete`` names the
reason) whenever part of the reachable graph was left unexplored; liveness is
never judged on such a graph; a bounded depth-first search finds every state
within its bound.
"""

from __future__ import annotations

import warnings

import pytest

import forkcheck as fc
from forkcheck import LivenessNotChecked
from two_phase import two_phase

# --------------------------------------------------------------------------- models


@fc.model
def wander():
    """``x`` moves among 0..4 but never reaches 4 once it is 3: ``eventually x == 4`` fails."""
    s = {"x": 0}

    async def looper():
        while True:
            k = await fc.choose([0, 1, 2])
            s["x"] = 3 if s["x"] == 3 else (s["x"] + k) % 5

    fc.spawn(looper)
    fc.eventually(lambda: s["x"] == 4, name="four")


@fc.model
def rare():
    """One option in eight loops forever without ``x == 1``; every other run ends with it."""
    s = {"x": 0}

    async def picker():
        k = await fc.choose(list(range(8)))
        while k == 7:
            await fc.checkpoint()
        s["x"] = 1

    fc.spawn(picker)
    fc.eventually(lambda: s["x"] == 1, name="x is one")


@fc.model
def detour():
    """State X is reached in 3 steps by the first (slow) option and in 2 by the second.

    A depth-first search meets the slow path first; with ``max_depth=3`` it must
    expand X again when the fast path reaches it, or it misses X's successor.
    """
    s = {"pos": 0}

    async def walker():
        if await fc.choose(["slow", "fast"]) == "slow":
            s["pos"] = 1
            await fc.checkpoint()
            s["pos"] = 2
            await fc.checkpoint()
        else:
            s["pos"] = 9
            await fc.checkpoint()
        s["pos"] = 3
        await fc.checkpoint()  # X
        s["pos"] = 4
        await fc.checkpoint()
        s["pos"] = 5

    fc.spawn(walker)


@fc.model
def late_bug():
    """Two independent counters; an assertion fails early on one branch, many states remain."""
    s = {"a": 0, "b": 0}

    async def a():
        for _ in range(3):
            s["a"] += 1
            await fc.checkpoint()

    async def b():
        s["b"] = await fc.choose([0, 1])
        assert s["b"] == 0, "b is one"

    fc.spawn(a)
    fc.spawn(b)


@fc.model
def bug_at_the_end():
    """The only violation is in the last state: stopping there leaves nothing unexplored."""

    async def a():
        await fc.checkpoint()
        raise AssertionError("at the end")

    fc.spawn(a)


# --------------------------------------------------------------------------- random walks


def test_random_walks_are_incomplete_and_give_no_liveness_verdict():
    with pytest.warns(LivenessNotChecked, match="'four' were not checked: the graph is incomplete \\(random walks left"):
        r = wander.check(strategy="random", walks=3, max_depth=3)
    assert r.ok and not r.complete
    assert r.incomplete and r.incomplete[0].startswith("random walks left ")
    assert r.summary().startswith("Stopped early (random walks left ")
    # The exhaustive check finds the violation the walks could not judge.
    assert [v.kind for v in wander.check().violations] == ["liveness"]


@pytest.mark.filterwarnings("ignore::forkcheck.LivenessNotChecked")
def test_random_walks_that_leave_no_dead_end_are_still_incomplete():
    # Every state the walks reached either ended or had a transition taken, so the graph has
    # no unexpanded leaf; but the root's eight options were not all taken (seed 0 takes 6 and 0).
    with pytest.warns(LivenessNotChecked, match=r"'x is one' were not checked: the graph is incomplete \(random walks"):
        r = rare.check(strategy="random", walks=3)
    assert r.ok and not r.complete and (r.stats.states, r.stats.transitions) == (2, 2)
    assert r.incomplete == ["random walks left 1 state with transitions not taken"]
    assert [v.kind for v in rare.check().violations] == ["liveness"]


@pytest.mark.filterwarnings("ignore::forkcheck.LivenessNotChecked")
def test_random_walks_count_each_transition_once():
    r = wander.check(strategy="random", walks=5, max_depth=4)
    assert sum(len(d["steps"]) for _, _, d in r.graph.edges(data=True)) == r.stats.transitions
    assert all(len(set(d["labels"])) == len(d["labels"]) for _, _, d in r.graph.edges(data=True))


# --------------------------------------------------------------------------- stopping and bounds


def test_stopping_at_the_first_violation_is_incomplete_when_states_are_left():
    r = late_bug.check()
    assert [v.kind for v in r.violations] == ["assertion"] and not r.complete
    assert len(r.incomplete) == 1 and r.incomplete[0].startswith("stopped at the first violation with ")
    assert r.summary().startswith("Stopped early (stopped at the first violation with ")
    full = late_bug.check(stop_on_violation=False)
    assert full.complete and full.incomplete == [] and full.summary().startswith("Done. ")


def test_stopping_at_a_violation_in_the_last_state_is_complete():
    r = bug_at_the_end.check()
    assert [v.kind for v in r.violations] == ["assertion"]
    assert r.complete and r.incomplete == [] and r.summary().startswith("Done. ")


def test_max_depth_is_incomplete_only_when_it_cut_something():
    r = detour.check(max_depth=2)
    assert not r.complete and r.incomplete == ["max_depth=2 cut 2 states"]
    r = detour.check(max_depth=5)  # the longest run has 5 steps: the bound cuts nothing
    assert r.complete and r.incomplete == []


def test_max_states_and_time_limit_say_so():
    r = late_bug.check(max_states=3, stop_on_violation=False)
    assert not r.complete and r.incomplete[0].startswith("max_states=3 reached")
    r = two_phase(n=3).check(time_limit=0.2)
    assert not r.complete and r.incomplete[0].startswith("time_limit=0.2s ran out with ")


@pytest.mark.parametrize("model, depth", [(detour, 1), (detour, 2), (detour, 3), (detour, 4), (two_phase(n=2), 5)])
def test_bounded_dfs_finds_the_states_bfs_finds(model, depth):
    dfs = model.check(strategy="dfs", max_depth=depth)
    bfs = model.check(strategy="bfs", max_depth=depth)

    def fingerprints(r):
        return sorted(d["fingerprint"] for _, d in r.graph.nodes(data=True))

    assert fingerprints(dfs) == fingerprints(bfs)
    assert (dfs.stats.states, dfs.stats.transitions) == (bfs.stats.states, bfs.stats.transitions)
    assert dfs.incomplete == bfs.incomplete
    assert sum(len(d["steps"]) for _, _, d in dfs.graph.edges(data=True)) == dfs.stats.transitions


def test_bounded_dfs_is_deterministic():
    a, b = detour.check(max_depth=3), detour.check(max_depth=3)
    assert (a.stats.states, a.stats.transitions, a.incomplete) == (b.stats.states, b.stats.transitions, b.incomplete)


def test_liveness_on_a_depth_bounded_graph_is_not_judged():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wander.check()  # complete: judged, no warning
    with pytest.warns(LivenessNotChecked, match=r"the graph is incomplete \(max_depth=2 cut"):
        r = wander.check(max_depth=2)
    assert r.ok and not r.complete
