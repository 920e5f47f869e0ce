"""The reductions against the full search: same verdicts, replayable counterexamples, fewer transitions.

Each reduction is tested against ``reduction="none"`` on every example and
test model, and on random small programs (hypothesis).  With sleep sets the
states must be the same too.  ``test_the_differential_tests_catch_an_unsound_table``
makes two gets on one mailbox "independent" and checks that the comparison
then fails: the differential tests can fail.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forkcheck as fc
import cli_models
import models
import reduction_models as rm
from dining_philosophers import philosophers
from forkcheck._check import reduction, search
from models import tcommit
from mutex import broken, peterson
from two_phase import two_phase

REDUCTIONS = ("sleep", "por")
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the interface


class FirstOnly(reduction.NoReduction):
    """Not a sound reduction: a probe that the search forks what the reduction says, and nothing else."""

    name = "first-only"

    def to_expand(self, node):
        return [0] if node.report.transitions else []


def test_no_reduction_takes_every_transition():
    node = type("N", (), {"report": type("R", (), {"transitions": [1, 2, 3]})()})()
    assert reduction.NoReduction().to_expand(node) == [0, 1, 2]
    assert isinstance(reduction.make_reduction("none"), reduction.NoReduction)


def test_the_search_forks_what_the_reduction_names(monkeypatch):
    full = tcommit(n=2).check()
    monkeypatch.setattr(search, "make_reduction", lambda name, status: FirstOnly())
    one_path = tcommit(n=2).check()
    # one transition per state: a single path, as long as the shortest way DFS goes down first
    assert one_path.stats.transitions == one_path.stats.states - 1 < full.stats.transitions
    assert all(d <= 1 for _, d in one_path.graph.out_degree())
    assert isinstance(full, fc.CheckResult)


# --------------------------------------------------------------------------- the table


def test_the_table_of_primitive_operations():
    c = reduction.commute
    assert c("M", "put", "get") and c("M", "g?", "put") and c("M", "rd", "g?")
    assert not c("M", "get", "get") and not c("M", "put", "put") and not c("M", "rd", "put")
    assert not c("L", "acq", "acq") and not c("L", "acq", "rel") and not c("L", "a?", "rel")
    assert c("S", "rel", "rel") and c("S", "acq", "rel") and not c("S", "acq", "acq")
    assert c("N", "snd", "snd") and not c("N", "snd", "rcv") and not c("N", "rcv", "rcv")
    assert c("E", "set", "set") and c("E", "w?", "set") and not c("E", "rd", "set")


def _foot(owner, reads=(), writes=(), ops=None, world=False):
    return reduction.Foot(owner, f"{owner}|t", frozenset(reads), frozenset(writes), ops or {}, world)


def test_independence_of_two_steps():
    ind = reduction.independent
    assert ind(_foot(0, reads=[1]), _foot(1, reads=[1]))  # both only read object 1
    assert not ind(_foot(0, reads=[1], writes=[1]), _foot(1, reads=[1]))  # one writes what the other reads
    assert not ind(_foot(0), _foot(0))  # one actor's steps never commute
    assert not ind(_foot(0, world=True), _foot(1, world=True))  # both spawn
    box = {7: ("M", frozenset({"g?", "get"}))}
    assert not ind(_foot(0, ops=box), _foot(1, ops=box))  # two gets on one mailbox
    assert ind(_foot(0, ops=box), _foot(1, ops={7: ("M", frozenset({"put"}))}))
    assert ind(_foot(0, ops=box), _foot(1, ops={8: ("M", frozenset({"g?", "get"}))}))  # another mailbox
    assert not ind(reduction.Foot(0, None, unknown=True), _foot(1))


def test_a_step_conflicts_with_what_another_root_may_do_later():
    later = reduction.Root(((1, 2), ((7, "M"),), 0, (), (5,)))
    assert reduction.conflicts(_foot(0, reads=[2]), later)  # it may write object 2
    assert reduction.conflicts(_foot(0, ops={7: ("M", frozenset({"rd"}))}), later)  # it may put to box 7
    assert not reduction.conflicts(_foot(0, reads=[3, 5], ops={8: ("M", frozenset({"put"}))}), later)
    assert reduction.conflicts(_foot(0, writes=[5]), later)  # it may read object 5, which it never writes
    assert reduction.conflicts(_foot(0, world=True), reduction.Root(((), (), reduction.WORLD, (), ())))


# --------------------------------------------------------------------------- differential tests


def verdicts(r):
    return sorted({(v.kind, v.name) for v in r.violations})


def compare(model, strategy="dfs", replay=True, **kw):
    """Check ``model`` under every reduction and under none; the same violations, the same states with sleep."""
    full = model.check(strategy=strategy, stop_on_violation=False, **kw)
    assert full.complete, full.incomplete
    out = {"none": full}
    for red in REDUCTIONS:
        r = model.check(strategy=strategy, stop_on_violation=False, reduction=red, **kw)
        assert r.complete, (red, r.incomplete)
        assert verdicts(r) == verdicts(full), (red, strategy)
        assert r.stats.reduction == red
        assert r.stats.transitions + r.stats.skipped >= r.stats.transitions
        if red == "sleep":
            assert r.stats.states == full.stats.states, (red, strategy)
            assert set(nx.get_node_attributes(r.graph, "fingerprint").values()) == \
                set(nx.get_node_attributes(full.graph, "fingerprint").values())
        assert r.stats.states <= full.stats.states and r.stats.transitions <= full.stats.transitions
        if replay:
            for v in r.violations:
                steps = fc.replay(model, v.trace.token)
                assert len(steps) == len(v.trace)
                found = {(k, n) for k, n, _ in steps.violations}
                assert (v.kind, v.name) in found or v.kind == "timeout", (red, v.kind, v.name, found)
        if strategy == "bfs":
            # counterexamples stay shortest among the states this search visited
            for v in r.violations:
                target = 0
                if len(v.trace):
                    target = next(s for s, d in r.graph.nodes(data=True) if d["fingerprint"] == v.trace[-1].fingerprint)
                assert len(v.trace) == nx.shortest_path_length(r.graph, 0, target), (red, v.kind, v.name)
        out[red] = r
    return out


EXAMPLES = [
    pytest.param(two_phase(n=2), id="two_phase(n=2)"),
    pytest.param(philosophers(n=3), id="philosophers(n=3)"),
    pytest.param(philosophers(n=3, ordered=True), id="philosophers(ordered)"),
    pytest.param(broken(), id="mutex.broken"),
    pytest.param(peterson(), id="mutex.peterson"),
    pytest.param(models.die_hard(), id="models.die_hard"),
    pytest.param(models.tcommit(n=3), id="models.tcommit"),
    pytest.param(cli_models.die_hard(), id="cli.die_hard"),
    pytest.param(cli_models.die_hard_functions(), id="cli.die_hard_functions"),
    pytest.param(cli_models.counter(n=3), id="cli.counter"),
    pytest.param(cli_models.greeter(name="bob"), id="cli.greeter"),
    pytest.param(cli_models.philosophers(), id="cli.philosophers"),
    pytest.param(cli_models.slow(steps=2, delay=0.01), id="cli.slow"),
    pytest.param(cli_models.small_die_hard, id="cli.small_die_hard"),
    pytest.param(rm.two_getters(), id="two_getters"),
    pytest.param(rm.independent_counters(), id="independent_counters"),
    pytest.param(rm.philosophers_args(n=3), id="philosophers_args"),
    pytest.param(rm.mailbox_commit(n=2), id="mailbox_commit"),
    pytest.param(rm.hidden_global(), id="hidden_global"),
    pytest.param(rm.class_attribute(), id="class_attribute"),
    pytest.param(rm.nonlocal_cell(), id="nonlocal_cell"),
    pytest.param(rm.spawner(), id="spawner"),
    pytest.param(rm.semaphore_event(), id="semaphore_event"),
    pytest.param(rm.looping_pair(), id="looping_pair"),
    pytest.param(rm.timeout_race(), id="timeout_race"),
]


@pytest.mark.parametrize("model", EXAMPLES)
def test_every_model_has_the_same_verdicts_under_each_reduction(model):
    compare(model, "dfs")


@pytest.mark.parametrize("model", EXAMPLES[:6] + EXAMPLES[14:])
def test_the_same_under_bfs(model):
    compare(model, "bfs")


def test_a_model_with_an_endless_step_times_out_under_each_reduction():
    compare(models.spinning(), "dfs", replay=False, transition_timeout=0.5)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["dfs", "bfs"])
def test_two_phase_with_three_managers(strategy):
    out = compare(two_phase(n=3), strategy, replay=False)
    assert out["none"].stats.states == out["sleep"].stats.states == 288


def test_the_reductions_take_fewer_transitions_where_steps_commute():
    out = compare(rm.independent_counters(n=3, steps=2), replay=False)
    assert out["none"].stats.transitions == 54
    assert out["sleep"].stats.transitions < out["none"].stats.transitions
    assert out["por"].stats.states < out["none"].stats.states
    assert out["sleep"].stats.skipped > 0
    assert "reduction=sleep (" in out["sleep"].summary() and "transitions skipped)" in out["sleep"].summary()


def test_stopping_at_the_first_violation_finds_one_that_replays():
    for red in REDUCTIONS:
        for strategy in ("dfs", "bfs"):
            r = rm.philosophers_args(n=3).check(reduction=red, strategy=strategy)
            assert [v.kind for v in r.violations] == ["deadlock"]
            fc.replay(rm.philosophers_args(n=3), r.violations[0].trace.token)


def test_the_same_model_twice_gives_the_same_graph_and_counts():
    for red in REDUCTIONS:
        a = rm.mailbox_commit(n=2).check(reduction=red, stop_on_violation=False)
        b = rm.mailbox_commit(n=2).check(reduction=red, stop_on_violation=False)
        assert (a.stats.states, a.stats.transitions, a.stats.skipped) == (b.stats.states, b.stats.transitions,
                                                                           b.stats.skipped)
        assert sorted(a.graph.edges) == sorted(b.graph.edges)


def test_jobs_and_a_small_snapshot_budget_keep_the_verdicts():
    # jobs: forks in parallel; max_snapshots: states evicted and rebuilt (their object ids change).
    for kw in ({"jobs": 2}, {"max_snapshots": 6}, {"snapshot": "replay"}):
        compare(rm.philosophers_args(n=3), "dfs", replay=False, **kw)
        compare(rm.mailbox_commit(n=2), "bfs", replay=False, **kw)


def test_the_differential_tests_catch_an_unsound_table(monkeypatch):
    """Two gets on one mailbox made "independent": the reductions then miss g0's assertion."""
    monkeypatch.setattr(reduction, "COMMUTE", reduction.COMMUTE | {("M", frozenset({"get"})), ("M", frozenset({"get", "g?"}))})
    for red in REDUCTIONS:
        r = rm.two_getters().check(reduction=red, stop_on_violation=False)
        assert verdicts(r) == [], red  # the violation is lost: the table is what makes it sound
    with pytest.raises(AssertionError):
        compare(rm.two_getters(), replay=False)


SCRIPT = """
import forkcheck as fc

LEVEL = 0


def level():
    return LEVEL


@fc.model
def scripted():
    async def writer():
        global LEVEL
        await fc.checkpoint()
        LEVEL = 1

    async def reader():
        await fc.checkpoint()
        assert level() == 0, "saw the write"

    fc.spawn(writer)
    fc.spawn(reader)


for red in ("none", "sleep", "por"):
    r = scripted.check(reduction=red, stop_on_violation=False)
    print(red, sorted((v.kind, v.name) for v in r.violations), r.stats.states)
"""


def test_a_model_run_as_a_script_keeps_its_globals(tmp_path):
    """A script's model travels by value and names ``__main__``: its globals are still followed."""
    import os
    import subprocess
    import sys

    (tmp_path / "script.py").write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    out = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[:3] == [f"{red} [('assertion', 'reader')] 5" for red in ("none", "sleep", "por")], out.stdout


# --------------------------------------------------------------------------- random programs


OBJS = ("o0", "o1", "o2")
BOXES = ("b0", "b1")
LOCKS = ("l0", "l1")
_BLOCKING = ("checkpoint", "choose", "when", "get", "lock", "wait", "recv", "down", "tget", "trecv", "select")


@st.composite
def programs(draw, loop, allow_spawn):
    """A program of tests/reduction_models.py's interpreter; a looping one never grows a queue or a count."""
    prog, held = [("checkpoint",)], []
    for _ in range(draw(st.integers(1, 4))):
        kinds = ["read", "write", "bump", "assert", "checkpoint", "choose", "when", "get", "lock", "wait", "recv",
                 "down", "len", "set", "tget", "trecv", "select"]
        if not loop:
            kinds += ["put", "send", "up"] + (["spawn"] if allow_spawn else [])
        if held:
            kinds.append("unlock")
        kind = draw(st.sampled_from(kinds))
        o = draw(st.sampled_from(OBJS))
        x = draw(st.integers(1, 2)) if kind in ("assert", "when") else draw(st.integers(0, 2))
        b = draw(st.sampled_from(BOXES))
        if kind in ("read", "bump"):
            op: tuple = (kind, o)
        elif kind in ("write", "assert", "when"):
            op = (kind, o, x)
        elif kind == "choose":
            op = (kind, o, draw(st.integers(1, 2)))
        elif kind == "put":
            op = (kind, b, x)
        elif kind in ("get", "tget"):
            op = (kind, b)
        elif kind == "select":
            op = (kind, b, draw(st.booleans()))
        elif kind == "len":
            op = (kind, b, o)
        elif kind == "lock":
            lock = draw(st.sampled_from(LOCKS))
            if lock in held:
                continue
            held.append(lock)
            op = (kind, lock)
        elif kind == "unlock":
            op = (kind, held.pop(draw(st.integers(0, len(held) - 1))))
        elif kind == "send":
            op = (kind, x)
        elif kind == "spawn":
            op = (kind, 0)
        else:
            op = (kind,)
        prog.append(op)
    if loop:
        prog += [("unlock", lock) for lock in reversed(held)]
    return tuple(prog)


@st.composite
def specs(draw):
    actors = []
    for _ in range(draw(st.integers(2, 3))):
        loop = draw(st.booleans()) and draw(st.booleans())
        actors.append((draw(programs(loop, True)), loop))
    invariants = draw(st.lists(st.tuples(st.sampled_from(OBJS), st.integers(1, 2), st.sampled_from(OBJS),
                                         st.integers(0, 2)), max_size=2))
    box_invariants = draw(st.lists(st.tuples(st.sampled_from(BOXES), st.integers(0, 1)), max_size=1))
    return {"objects": OBJS, "boxes": BOXES, "locks": LOCKS, "actors": tuple(actors),
            "helpers": (draw(programs(False, False)),), "invariants": tuple(invariants),
            "box_invariants": tuple(box_invariants), "lossy": draw(st.booleans())}


def _agree(spec) -> None:
    model = rm.program(spec)
    full = model.check(stop_on_violation=False, max_states=300, determinism_checks=0)
    if not full.complete:
        return  # too big to compare quickly
    for red, strategy in (("sleep", "dfs"), ("por", "dfs"), ("por", "bfs")):
        r = model.check(stop_on_violation=False, reduction=red, strategy=strategy, determinism_checks=0)
        assert verdicts(r) == verdicts(full), (red, strategy, spec)
        if red == "sleep":
            assert r.stats.states == full.stats.states, (red, strategy, spec)


@settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(specs())
def test_random_programs_agree_with_the_full_search(spec):
    _agree(spec)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(specs())
def test_many_random_programs_agree_with_the_full_search(spec):
    _agree(spec)


# --------------------------------------------------------------------------- what a reduction refuses


def test_liveness_properties_are_refused_with_a_reduction():
    @fc.model
    def eventually_done():
        state = {"done": False}

        async def worker():
            await fc.checkpoint()
            state["done"] = True

        fc.spawn(worker)
        fc.eventually(lambda: state["done"], name="done")

    for red in REDUCTIONS:
        with pytest.raises(fc.UsageError) as e:
            eventually_done.check(reduction=red)
        text = str(e.value)
        assert "\n" not in text and f"reduction={red!r}" in text and "fairness='weak'" in text
        assert "eventually 'done'" in text
    assert eventually_done.check().ok


def test_the_notebook_explorer_runs_a_reduction():
    with fc.Explorer(rm.philosophers_args(n=3)) as ex:
        r = ex.run(strategy="bfs", reduction="por", stop_on_violation=False)
        assert verdicts(r) == [("deadlock", "deadlock")]
        assert r.stats.reduction == "por"
