"""Known state spaces come out exactly, under every strategy."""

import pytest

import forkcheck as fc
from models import die_hard, tcommit, two_phase_spec_bfs
from two_phase import two_phase


@pytest.mark.parametrize("strategy", ["bfs", "dfs"])
def test_two_phase_matches_tlc(strategy):
    r = two_phase(n=3).check(strategy=strategy)
    assert r.ok and r.complete
    assert (r.stats.states, r.stats.transitions, r.stats.max_depth) == (288, 1145, 10)


def test_two_phase_matches_an_independent_search_of_the_spec():
    r = two_phase(n=2).check(strategy="bfs")
    assert (r.stats.states, r.stats.transitions, r.stats.max_depth) == two_phase_spec_bfs(2)
    assert two_phase_spec_bfs(3) == (288, 1145, 10)


def test_graph_has_a_node_per_state_and_an_edge_per_distinct_transition():
    r = two_phase(n=2).check(strategy="bfs")
    g = r.graph
    assert g.number_of_nodes() == r.stats.states
    assert sum(len(d["labels"]) for _, _, d in g.edges(data=True)) == r.stats.transitions


def test_tcommit_has_34_states():
    r = tcommit(n=3).check(strategy="bfs", deadlock=False)
    assert r.ok
    assert r.stats.states == 34


def test_tcommit_terminal_states_are_deadlocks_when_checked():
    r = tcommit(n=3).check(strategy="bfs")
    assert [v.kind for v in r.violations] == ["deadlock"]
    assert "rm0 waits for choose" in r.violations[0].message


def test_die_hard_bfs_finds_the_six_step_solution_and_replay_reproduces_it():
    r = die_hard.check(strategy="bfs")
    (v,) = r.violations
    assert (v.kind, v.name) == ("invariant", "big != 4")
    assert len(v.trace) == 6
    steps = fc.replay(die_hard, v.trace.token)
    assert [s.label for s in steps] == [s.label for s in v.trace]
    assert steps[-1].violations == [("invariant", "big != 4", "invariant 'big != 4' is violated")]
    assert "'big': 4" in steps[-1].state.view


def test_die_hard_dfs_finds_a_violation_too():
    r = die_hard.check(strategy="dfs")
    assert r.violations[0].name == "big != 4"
    assert len(r.violations[0].trace) >= 6


def test_die_hard_full_state_space():
    r = die_hard.check(strategy="bfs", stop_on_violation=False)
    assert r.stats.states == 16
    bad = [n for n, d in r.graph.nodes(data=True) if d["violations"]]
    assert len(bad) == 2  # (3, 4) and (0, 4): violating states are not expanded
    assert r.stats.transitions == 6 * (16 - len(bad))
