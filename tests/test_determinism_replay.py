"""Determinism of exploration, parallel expansion, and replay of traces."""

import pytest

import forkcheck as fc
from models import die_hard
from two_phase import two_phase


def edges(r):
    return sorted((u, v, tuple(d["labels"])) for u, v, d in r.graph.edges(data=True))


@pytest.mark.parametrize("strategy", ["bfs", "dfs"])
def test_same_model_twice_gives_the_same_graph_counts_and_traces(strategy):
    a = die_hard.check(strategy=strategy, stop_on_violation=False)
    b = die_hard.check(strategy=strategy, stop_on_violation=False)
    assert edges(a) == edges(b)
    assert [n for n in a.graph.nodes(data="fingerprint")] == [n for n in b.graph.nodes(data="fingerprint")]
    assert (a.stats.states, a.stats.transitions) == (b.stats.states, b.stats.transitions)
    assert [v.trace.token for v in a.violations] == [v.trace.token for v in b.violations]


@pytest.mark.parametrize("strategy", ["bfs", "dfs"])
def test_jobs_expand_in_parallel_with_identical_results(strategy):
    one = two_phase(n=2).check(strategy=strategy, jobs=1)
    two = two_phase(n=2).check(strategy=strategy, jobs=2)
    assert edges(one) == edges(two)
    assert two.stats.memory.peak_snapshots >= 2


def test_random_walks_are_reproducible_from_the_seed():
    a = two_phase(n=2).check(strategy="random", seed=7, walks=10)
    b = two_phase(n=2).check(strategy="random", seed=7, walks=10)
    c = two_phase(n=2).check(strategy="random", seed=8, walks=10)
    assert edges(a) == edges(b)
    assert a.stats.states <= 2 ** 10
    assert edges(a) != edges(c)


def test_replay_returns_each_step_with_the_state_after_it():
    r = die_hard.check(strategy="bfs")
    steps = fc.replay(die_hard(), r.violations[0].trace.token)
    assert len(steps) == 6
    assert steps.initial.view == "{'small': 0, 'big': 0}"
    assert all(s.actor == "hands" for s in steps)
    assert steps[-1].state.view.endswith("'big': 4}")
    assert steps[-1].fingerprint == r.violations[0].trace[-1].fingerprint
    assert steps.violations and steps.violations[0][0] == "invariant"


def test_replay_accepts_a_trace_object_and_the_decorated_function():
    r = die_hard.check(strategy="bfs")
    assert len(fc.replay(die_hard, r.violations[0].trace)) == 6


def test_replay_of_a_trace_that_no_longer_applies_says_so():
    @fc.model
    def m(options):
        async def a():
            await fc.choose(options)

        fc.spawn(a)

    r = m(["x", "y"]).check(stop_on_violation=False)
    token = fc.Trace([fc.Step(1, "a", "choose 'y'")]).token
    assert len(fc.replay(m(["x", "y"]), token)) == 1
    with pytest.raises(fc.NondeterminismError, match="step 1 of the trace takes 'a: choose 'y''"):
        fc.replay(m(["x", "z"]), token)
    assert r.ok


def test_replay_detects_a_divergent_state():
    @fc.model
    def m():
        async def a():
            import time
            await fc.checkpoint()
            stamp = time.perf_counter_ns()
            await fc.checkpoint()
            del stamp

        fc.spawn(a)

    r = m.check(determinism_checks=0, stop_on_violation=False)
    assert r.ok
    path = [(u, v) for u, v in r.graph.edges]
    first = r.graph.edges[path[0]]["steps"][0]
    trace = fc.Trace([first])
    with pytest.raises(fc.NondeterminismError, match="led to a different state"):
        fc.replay(m, trace)


def test_damaged_tokens_are_usage_errors():
    with pytest.raises(fc.UsageError, match="not a forkcheck trace token"):
        fc.replay(die_hard, "hello")
    with pytest.raises(fc.UsageError, match="damaged"):
        fc.replay(die_hard, "fc1:abc")
