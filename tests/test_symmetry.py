"""Symmetry (fc.symmetric): one state per orbit, the same verdicts, concrete traces that replay, clear misuse errors.

The orbit counts are computed without forkcheck's canonical walk: TwoPhase's
by a plain-Python search of the TLA+ spec that sorts each state's managers
(checked against forkcheck's unreduced search), the other models' by brute
force over every permutation of the values of each state the unreduced
search reaches (``symmetry_models.orbit_key``).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forkcheck as fc
from forkcheck._app import fingerprint as _fingerprint
from forkcheck._app.runtime import World
from symmetry_models import declared, insertion, two_phase_spec, mailbox_commit, misuse, pick, program, spawner, two_phase_bug, voters
from two_phase import two_phase


# --------------------------------------------------------------------------- TwoPhase's orbits, independently


def test_the_spec_search_agrees_with_forkchecks_unreduced_search():
    r = two_phase(n=3, symmetric=True).check(symmetry=False, strategy="bfs")
    assert (r.stats.states, r.stats.transitions) == two_phase_spec(3, False) == (288, 1145)
    assert r.stats.symmetry == {}


@pytest.mark.slow
def test_the_spec_search_agrees_with_forkchecks_unreduced_search_for_four_managers():
    r = two_phase(n=4, symmetric=True).check(symmetry=False)
    assert (r.stats.states, r.stats.transitions) == two_phase_spec(4, False) == (1568, 8257)


@pytest.mark.parametrize("n", [3, 4])
def test_two_phase_with_symmetric_managers_has_one_state_per_orbit(n):
    orbits, transitions = two_phase_spec(n, True)
    r = two_phase(n=n, symmetric=True).check()
    assert r.ok and r.complete
    assert orbits <= r.stats.states <= 1.2 * orbits
    assert (r.stats.states, r.stats.transitions) == (orbits, transitions)  # exactly, in fact
    assert r.stats.symmetry == {"rm": n}
    assert "symmetry over rm (%d values)" % n in r.summary()


@pytest.mark.slow
@pytest.mark.parametrize("n", [7, 9])
def test_two_phase_with_seven_and_nine_symmetric_managers(n):
    orbits, _ = two_phase_spec(n, True)
    r = two_phase(n=n, symmetric=True).check(jobs=2)
    assert r.ok and r.complete
    assert orbits <= r.stats.states <= 1.2 * orbits, (r.stats.states, orbits)
    if n == 7:
        assert r.stats.seconds <= 60, r.summary()


# --------------------------------------------------------------------------- other models: orbits by brute force


def brute_orbits(model, tmp_path) -> tuple[int, int]:
    """(orbits, states) of ``model`` (symmetric values, a ``log`` argument), from its unreduced search."""
    log = tmp_path / "orbits.log"
    r = model(log=str(log)).check(symmetry=False, determinism_checks=0, deadlock=False)
    assert r.ok and r.complete
    return len(set(log.read_text().splitlines())), r.stats.states


@pytest.mark.parametrize("model,n", [(voters, 3), (voters, 4), (spawner, 3)])
def test_states_are_orbits_counted_by_brute_force(model, n, tmp_path):
    orbits, unreduced = brute_orbits(lambda **kw: model(n=n, **kw), tmp_path)
    r = model(n=n).check(deadlock=False)  # spawner's workers end blocked once the tokens are given
    assert r.ok and r.complete
    assert orbits <= r.stats.states <= 1.2 * orbits, (r.stats.states, orbits, unreduced)
    assert r.stats.states < unreduced


def test_voters_count_the_multisets_of_votes():
    # n voters, each not yet voted, yes or no: the orbits are the multisets of size n over 3 kinds.
    for n in (2, 3):
        assert voters(n=n).check().stats.states == (n + 2) * (n + 1) // 2
        assert voters(n=n, symmetric=False).check().stats.states > (n + 2) * (n + 1) // 2


def test_determinism_same_graph_twice():
    a = spawner(n=3).check(strategy="bfs", deadlock=False)
    b = spawner(n=3).check(strategy="bfs", deadlock=False)
    assert [d["fingerprint"] for _, d in a.graph.nodes(data=True)] == \
        [d["fingerprint"] for _, d in b.graph.nodes(data=True)]
    assert (a.stats.states, a.stats.transitions) == (b.stats.states, b.stats.transitions)


# --------------------------------------------------------------------------- the two walks


@pytest.fixture(autouse=True)
def _no_world_left():
    """Tests that run a model's world in this process (_world) leave no loaded world behind."""
    from forkcheck._app import runtime

    yield
    runtime._WORLD = None


def _world(model, path=()):
    """The world of ``model`` in this process, after the transitions at the positions ``path``."""
    w = World()
    w.setup(model.fn, model.args, model.kwargs)
    assert w.model_error is None, w.model_error
    for i in path:
        w.execute(i)
    return w


def _walks(w):
    py = _fingerprint.walk_stream(w, "python", stream=True)
    c = _fingerprint.walk_stream(w, "c", stream=True)
    return py, c


def _signatures(w, kind):
    anon = tuple(f"~{v._set.name}?" for v in w.symmetric_values)
    if kind == "python":
        h = _fingerprint._Hasher(labels=anon, names=w.symmetric_names(), sym=True, track=True)
    else:
        h = _fingerprint._cfingerprint.Walker()
        h.symmetry(anon, w.symmetric_names(), True, True)
    _fingerprint._walk_symmetric(h, w, track=True)
    return h.signatures()


@pytest.mark.parametrize("model", [two_phase(n=3, symmetric=True), mailbox_commit(n=3), spawner(n=3),
                                   program(n=3, ops=(("give", 1), ("take", 0), ("choose", 1), ("add", 2)))])
def test_the_c_walk_gives_the_python_walks_tokens_and_signatures(model):
    assert _fingerprint._cfingerprint is not None
    import random

    rng = random.Random(0)
    for run in range(6):
        path = []
        w = _world(model)
        for _ in range(8):
            py, c = _walks(w)
            assert c == py, f"path {path}:\n  python {py[1][:300]!r}\n  c      {c[1][:300]!r}"
            assert _signatures(w, "c") == _signatures(w, "python"), path
            ts = w.enabled()
            if not ts:
                break
            i = rng.randrange(len(ts))
            path.append(i)
            w.execute(i)


def test_objects_with_values_give_the_same_tokens_in_both_walks():
    from forkcheck._app.symmetry import Symmetric

    rm = Symmetric("rm", 3, 0)
    a, b, c = rm
    objs = [a, (a, b), frozenset({a, c}), {b: 1, a: 2}, {(a, b): "x", (b, a): "y"}, {frozenset({a}): 1},
            collections.defaultdict(list, {c: [a], a: [b]}), collections.Counter([a, a, b]), {a, b},
            [{a: {b: c}}, {("k", a): 0, "plain": 1}], _fingerprint.Unordered([(a, 1), (b, 1)]), rm,
            {"nested": {a: [b, {c}]}}]
    for labels in (None, ("~rm2", "~rm0", "~rm1"), ("~rm?", "~rm?", "~rm?")):
        for obj in objs + [objs]:
            h = _fingerprint._Hasher(labels=labels, names=(("rm", 3),), sym=True)
            h.stream_parts = []
            h.h(obj)
            w = _fingerprint._cfingerprint.Walker(keep_stream=True)
            w.symmetry(labels, (("rm", 3),), True, False)
            w.h(obj)
            assert w.digest() == h.digest(), (labels, obj)
            assert w.stream() == b"".join(h.stream_parts)


def test_a_dict_keyed_by_values_is_walked_in_the_order_of_its_keys_under_symmetry_only():
    from forkcheck._app.symmetry import Symmetric

    a, b, _ = Symmetric("rm", 3, 0)
    labels = ("~rm0", "~rm1", "~rm2")

    def fp(obj, sym):
        h = _fingerprint._Hasher(labels=labels, names=(("rm", 3),) if sym else (), sym=sym)
        h.h(obj)
        return h.digest()

    assert fp({a: 1, b: 2}, True) == fp({b: 2, a: 1}, True)
    assert fp({a: 1, b: 2}, False) != fp({b: 2, a: 1}, False)
    assert fp({a: 1, b: 2}, True) != fp({a: 2, b: 1}, True)
    assert fp({"x": 1, "y": 2}, True) != fp({"y": 2, "x": 1}, True)  # no value among the keys: insertion order


def test_the_python_walk_gives_the_same_graph(monkeypatch):
    def graph(model):
        r = model.check(max_states=60)
        return {d["fingerprint"] for _, d in r.graph.nodes(data=True)}, r.stats.states, r.stats.transitions

    for model in (voters(n=3), mailbox_commit(n=2)):
        monkeypatch.delenv("FORKCHECK_PURE_PYTHON_WALK", raising=False)
        c = graph(model)
        monkeypatch.setenv("FORKCHECK_PURE_PYTHON_WALK", "1")
        assert graph(model) == c


# --------------------------------------------------------------------------- the same verdicts, traces that replay


def _verdicts(r):
    return sorted((v.kind, v.name) for v in r.violations)


def _replays(model, v):
    steps = fc.replay(model, v.trace.token)
    assert len(steps) == len(v.trace)
    if not len(steps):
        return  # the initial state: replay reports the violations of the last step, and there is none
    if v.kind == "deadlock":
        assert ("deadlock", "deadlock") in {(k, n) for k, n, _ in steps.violations}
    else:
        assert (v.kind, v.name) in {(k, n) for k, n, _ in steps.violations}


@pytest.mark.parametrize("strategy,extra", [("bfs", {}), ("dfs", {}), ("dfs", {"max_depth": 8}),
                                            ("random", {"walks": 60, "seed": 3}), ("bfs", {"jobs": 2})])
def test_a_symmetric_model_with_a_bug_reports_it_and_the_counterexample_replays(strategy, extra):
    model = two_phase_bug(n=3)
    on = model.check(strategy=strategy, stop_on_violation=False, **extra)
    off = model.check(strategy=strategy, stop_on_violation=False, symmetry=False, **extra)
    assert _verdicts(on) == _verdicts(off) == [("invariant", "consistent")]
    for v in on.violations + off.violations:
        _replays(model, v)
    if strategy == "bfs":  # shortest counterexamples both ways
        assert len(on.violations[0].trace) == len(off.violations[0].trace)
    if strategy != "random":
        assert on.stats.states < off.stats.states


def test_a_bounded_depth_first_search_rebuilds_a_state_reached_again_as_another_member_of_its_orbit():
    # Under max_depth a state reached again by a shorter path is expanded again; the snapshot that
    # reached it may hold another member of its orbit, whose transitions are numbered otherwise.
    # Every state below must still have a trace that replays to it.
    model = mailbox_commit(n=3, bug=True)
    r = model.check(strategy="dfs", max_depth=9, stop_on_violation=False)
    off = model.check(strategy="dfs", max_depth=9, stop_on_violation=False, symmetry=False)
    assert _verdicts(r) == _verdicts(off) == [("invariant", "no commit over a no")]
    for v in r.violations:
        _replays(model, v)


@pytest.mark.parametrize("model,options", [
    (insertion(n=3), {"strategy": "dfs", "max_depth": 5}), (spawner(n=3), {"strategy": "dfs", "max_depth": 5}),
    (insertion(n=3), {"strategy": "dfs", "max_depth": 4}),
    (insertion(n=3), {"strategy": "random", "walks": 40, "max_depth": 8}),
    (spawner(n=3), {"strategy": "random", "walks": 40, "max_depth": 12}),
])
def test_every_state_found_has_a_trace_that_replays_to_it(model, options):
    # A bounded depth-first search expands a state again when a shorter path reaches it, and a random
    # walk goes on from a known state: the snapshot at hand may be another member of the orbit, whose
    # transitions are numbered otherwise (insertion: a dict keyed by values filled in another order).
    # The state recorded is expanded instead (rebuilt along its path), and a walk keeps its own path;
    # without that, insertion(n=3) under max_depth=5 records a trace that does not replay.  The state
    # expanded again takes its transitions' actors and labels from its own report, not the other
    # member's: under max_depth=4 a step once read 'collector: choose t1' where replay took 'choose t0'.
    from forkcheck._check import search as S

    seen = {}
    real = S.Search._record_violations

    def record(self, sid, snap):  # called for every new state: remember its trace and fingerprint
        seen[sid] = (self.trace_to(sid), snap.report.fingerprint.hex())
        return real(self, sid, snap)

    S.Search._record_violations = record
    try:
        r = model.check(deadlock=False, **options)
    finally:
        S.Search._record_violations = real
    assert len(seen) == r.stats.states > 10
    for sid, (trace, fp) in seen.items():
        if len(trace):
            replayed = fc.replay(model, trace.token)
            assert replayed[-1].fingerprint == fp, sid  # each step is checked on the way
            assert not replayed.notes, (sid, replayed.notes)  # and reads as the trace says


def test_mailboxes_networks_and_locks_under_symmetry():
    for bug in (False, True):
        on = mailbox_commit(n=3, bug=bug).check(stop_on_violation=False)
        off = mailbox_commit(n=3, bug=bug).check(stop_on_violation=False, symmetry=False)
        assert _verdicts(on) == _verdicts(off) == ([("invariant", "no commit over a no")] if bug else [])
        assert on.stats.states < off.stats.states
        for v in on.violations:
            _replays(mailbox_commit(n=3, bug=bug), v)


_op = st.sampled_from([("set", 0), ("set", 1), ("race", 0), ("locked", 0), ("choose", 1), ("give", 1),
                       ("take", 0), ("add", 0), ("add", 1)])


@st.composite
def _programs(draw):
    n = draw(st.integers(2, 3))
    ops = tuple(draw(st.lists(_op, min_size=1, max_size=3 if n == 2 else 2)))
    limit = draw(st.tuples(st.sampled_from(["count", "bag", "ones"]), st.integers(1, 3)))
    return n, ops, limit


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
          database=None)
@given(case=_programs())
def test_random_symmetric_programs_get_the_same_verdicts(case):
    n, ops, limit = case
    model = program(n=n, ops=ops, limit=limit)
    on = model.check(stop_on_violation=False, max_states=3000)
    off = model.check(stop_on_violation=False, max_states=3000, symmetry=False)
    assert on.complete and off.complete
    assert _verdicts(on) == _verdicts(off)
    assert on.stats.states <= off.stats.states
    for v in on.violations:
        _replays(model, v)


# --------------------------------------------------------------------------- replay and the command line


def test_a_token_found_without_symmetry_says_so_and_replays():
    model = two_phase_bug(n=3)
    v = model.check(symmetry=False, strategy="bfs").violations[0]
    assert v.trace.symmetry is False and fc.Trace.from_token(v.trace.token).symmetry is False
    _replays(model, v)
    w = model.check(strategy="bfs").violations[0]
    assert fc.Trace.from_token(w.trace.token).symmetry is True
    _replays(model, w)


def test_the_command_line_turns_symmetry_off_and_replays_a_counterexample(tmp_path):
    target = f"{__file__.rsplit('/', 1)[0]}/symmetry_models.py:two_phase_bug"
    out = tmp_path / "r.json"

    def check(*flags):
        subprocess.run([sys.executable, "-m", "forkcheck", "check", target, "--strategy", "bfs", "--quiet",
                        "--json", str(out), *flags], capture_output=True, text=True)
        return json.loads(out.read_text())

    on, off = check(), check("--no-symmetry")
    assert on["stats"]["symmetry"] == {"rm": 3} and off["stats"]["symmetry"] == {}
    assert on["stats"]["states"] < off["stats"]["states"]
    for report in (on, off):
        proc = subprocess.run([sys.executable, "-m", "forkcheck", "replay", target, report["violations"][0]["trace"]["token"]],
                              capture_output=True, text=True)
        assert proc.returncode == 1 and "consistent" in proc.stdout, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- misuse


def _error(model, **kw) -> str:
    with pytest.raises(fc.ForkcheckError) as info:
        model.check(**kw)
    text = str(info.value)
    assert "\n" not in text.split("Traceback")[0].strip(), text
    return text


@pytest.mark.parametrize("how,words", [
    ("sort", "symmetric values have no order"), ("lt", "symmetric values have no order"),
    ("max", "symmetric values have no order"), ("int", "symmetric values are not numbers"),
    ("index", "symmetric values are not numbers"), ("add", "symmetric values are not numbers"),
    ("format", "format spec"), ("position", "has no positions"),
    ("string", "the state holds the string 'box-rm"),
])
def test_breaking_the_promise_cheaply_is_a_one_line_usage_error(how, words):
    text = _error(misuse(how=how))
    assert words in text, text
    with pytest.raises(fc.UsageError):
        misuse(how=how).check()


def test_a_string_naming_a_value_is_located_and_fine_without_symmetry():
    text = _error(misuse(how="string"))
    assert "which names symmetric value rm" in text and "'name'" in text and "symmetry=False" in text
    assert misuse(how="string").check(symmetry=False).ok


@pytest.mark.parametrize("what,words", [
    ("name", "an identifier that does not end with a digit"), ("n", "a whole number >= 1"),
    ("twice", "declared twice"), ("prefix", "start alike"),
    ("spawn name", "leave name= out"), ("liveness", "liveness under symmetry is not checked"),
    ("in actor", "must be called in the model's setup function"),
])
def test_declaring_symmetry_wrongly_is_a_usage_error(what, words):
    with pytest.raises(fc.UsageError) as info:
        declared(what=what).check()
    assert words in str(info.value), str(info.value)


def test_liveness_is_checked_with_symmetry_off_and_symmetric_outside_a_model_is_an_error():
    assert declared(what="liveness").check(symmetry=False).ok
    assert declared(what="spawn name").check(symmetry=False).ok
    with pytest.raises(fc.UsageError, match="outside a model"):
        fc.symmetric("rm", 2)
    with pytest.raises(fc.UsageError, match="symmetry='yes'"):
        voters.check(symmetry="yes")


def test_values_compare_by_identity_and_name_themselves():
    from forkcheck._app.symmetry import Symmetric

    rm = Symmetric("rm", 3, 0)
    a, b, c = rm
    assert a == a and a != b and len({a, b, c}) == 3 and len(rm) == 3 and a in rm and 1 not in rm
    assert (repr(a), str(b), f"{c}") == ("rm0", "rm1", "rm2")
    assert hash(a) == hash(b)  # no hash order tells them apart
    import copy
    import pickle

    assert copy.deepcopy([a])[0] is a and copy.copy(a) is a
    assert repr(pickle.loads(pickle.dumps(b))) == "rm1"
    assert repr(rm) == "symmetric('rm', 3)" and [repr(x) for x in rm] == ["rm0", "rm1", "rm2"]


def test_choose_among_the_values_of_a_set():
    on, off = pick.check(), pick.check(symmetry=False)
    # picks: {} ; {x} ; {x} again or {x, y}: orbits 1 + 1 + 2 = 4 (the chooser's position tells the levels apart)
    assert on.stats.states == 4 and off.stats.states == 1 + 3 + 3 + 3
    labels = {d["label"] for _, _, d in off.graph.edges(data=True)}
    assert {"chooser: choose rm0", "chooser: choose rm1", "chooser: choose rm2"} <= labels


def test_time_of_a_symmetric_fingerprint_is_measured_not_assumed():
    # Not a benchmark: the symmetric walk must stay within a small factor of the plain one, or n=7's 60 s fail.
    w = _world(two_phase(n=5, symmetric=True), [0, 1, 2])
    plain = _world(two_phase(n=5), [0, 1, 2])
    for x in (w, plain):
        _fingerprint.state_fingerprint(x)

    def clock(x):
        t = time.perf_counter()
        for _ in range(50):
            _fingerprint.state_fingerprint(x)
        return time.perf_counter() - t

    assert clock(w) < 15 * clock(plain)


def test_a_reduction_with_symmetry_is_refused_and_runs_with_symmetry_off():
    model = two_phase(n=2, symmetric=True)
    for red in ("sleep", "por"):
        with pytest.raises(fc.UsageError, match=f"reduction='{red}' cannot be combined with symmetry "
                                                r"\(this model declares fc.symmetric rm\)"):
            model.check(reduction=red)
    full = model.check(symmetry=False)
    sleep = model.check(symmetry=False, reduction="sleep")
    assert sleep.ok and sleep.stats.states == full.stats.states and sleep.stats.symmetry == {}
