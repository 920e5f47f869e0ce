"""Determinism of exploration, parallel expansion, and replay of traces."""

import pytest

import forkcheck as fc
from models import die_hard
from test_liveness import starvation
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


# --------------------------------------------------------------------------- replay by index and fingerprint


@fc.model
def pick(n=2):
    """One choice among ``n`` functions, kept in the state; the last one breaks an assertion."""
    got = []

    def make(k):
        def op():
            return k
        op.__qualname__ = f"op{k}"
        return op

    ops = [make(k) for k in range(n)]

    async def a():
        got.append((await fc.choose(ops))())
        assert got[-1] != n - 1, "the last op"

    fc.spawn(a)
    return got


def test_replay_by_index_notes_a_label_that_reads_differently_but_reaches_the_same_state():
    trace = pick.check().violations[0].trace
    (step,) = trace
    assert step.label == "choose op1"
    relabelled = fc.Trace([fc.Step(step.index, "a", "choose old name of op1", "", step.fingerprint)])
    rep = fc.replay(pick, relabelled.token)
    assert [s.label for s in rep] == ["choose op1"]  # what the replay took, not what the token says
    assert rep.notes == ["step 1: the trace says 'a: choose old name of op1', the replay took 'a: choose op1' to the "
                         "same state (a label or an actor name reads differently, for instance after an edit of a repr)"]
    assert rep.violations and rep.violations[0][0] == "assertion"
    assert fc.replay(pick, trace).notes == []


def test_replay_errors_name_the_model_arguments_as_the_likeliest_cause():
    trace = pick.check().violations[0].trace
    with pytest.raises(fc.NondeterminismError) as out_of_range:
        fc.replay(pick(n=1), trace)
    assert "step 1 of the trace takes 'a: choose op1' (transition 2), but the replayed state enables 1: " \
           "a: choose op0." in str(out_of_range.value)
    with pytest.raises(fc.NondeterminismError, match="led to a different state") as other_state:
        fc.replay(pick(n=3), trace)  # op1 exists, but the assertion no longer fails: another state
    for exc, now in ((out_of_range.value, "pick(n=1)"), (other_state.value, "pick(n=3)")):
        found = "pick(n=2)"  # the defaults are named: pick() and pick(n=2) are one model
        text = str(exc)
        # The token says what it was found on: the arguments that differ come first, by name.
        assert f"Likeliest cause: the trace was found on {found} and this replay runs {now}: replay it on {found}" in text
        assert text.index("this replay runs") < text.index("the model changed") < text.index("the clock")
    # A token that does not say (made by hand, or before tokens said it) lists the causes in that order.
    bare = fc.Trace(trace.steps)
    with pytest.raises(fc.NondeterminismError) as e:
        fc.replay(pick(n=3), bare)
    text = str(e.value)
    assert text.index("the model's arguments differ") < text.index("the model changed") < text.index("the clock")


def test_replay_of_a_token_that_reaches_a_raising_invariant_raises_the_model_error():
    @fc.model
    def m():
        s = {"n": 0}

        async def a():
            await fc.checkpoint()
            s["n"] += 1
            await fc.checkpoint()
            s["n"] += 1

        fc.spawn(a)
        fc.invariant(lambda: 1 / (2 - s["n"]), name="finite")

    with pytest.raises(fc.ModelError, match=r"reached by (fc1:\S+)\)") as found:
        m.check()
    token = found.value.args[0].rsplit("reached by ", 1)[1].rstrip(")")
    with pytest.raises(fc.ModelError) as replayed:
        fc.replay(m, token)
    assert "step 2 of the trace ('a: checkpoint'): " in str(replayed.value)
    assert "invariant 'finite' raised ZeroDivisionError" in str(replayed.value)
    assert len(replayed.value.replay) == 1  # the step before the error, with its state


def test_replay_of_a_lasso_checks_that_the_loop_closes():
    hog = starvation  # a spinner starves the worker when nothing is fair
    trace = hog.check(fairness="none").violations[0].trace
    assert trace.cycle_start is not None
    rep = fc.replay(hog, trace.token)
    assert rep.cycle_start == trace.cycle_start and rep.violations == []
    assert len(trace) == 1 and trace[0].actor == "spinner"
    # The worker's step as the loop: it does not lead back to the state it starts from.
    not_a_loop = fc.Trace([fc.Step(1, "worker", "checkpoint")], cycle_start=0)
    with pytest.raises(fc.NondeterminismError, match="its last step does not lead back to the state that loop starts"):
        fc.replay(hog, not_a_loop)
