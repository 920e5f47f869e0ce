"""The reduction interface: Search forks exactly the transitions its Reduction names."""

from __future__ import annotations

import forkcheck as fc
from forkcheck._check import reduction, search
from models import tcommit


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
