"""The state graph and its schema, written in one place.

``Search`` (``_check/search.py``) and the notebook's ``Explorer`` record
states and transitions through :class:`StateGraph`; liveness analysis, the
CLI's exports and the notebook's picture read the same attributes:

* a node is a state number (discovery order, the initial state 0) with
  ``fingerprint`` (hex), ``violations`` (kinds, ``"deadlock"`` included when
  deadlocks are reported), ``enabled`` (the actors with a transition, sorted),
  ``done`` (every actor returned) and ``labels`` (the truth of each liveness
  predicate);
* an edge ``(u, v)`` holds every transition from ``u`` to ``v``: ``steps``
  (:class:`~forkcheck.Step`), ``labels`` (``"actor: label"`` of each), and
  ``label`` and ``actor`` of the first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:  # pragma: no cover
    from ._protocol import Report
    from ._trace import Step


def violation_kinds(report: Report, deadlock: bool) -> list[str]:
    """The kinds of violation a state's report shows, a deadlock included when deadlocks count."""
    return [v.kind for v in report.found(deadlock)]


class StateGraph(nx.DiGraph):
    """A ``networkx.DiGraph`` whose nodes and edges follow the schema above."""

    def add_state(self, sid: int, report: Report, deadlock: bool) -> None:
        """Record state ``sid`` from its report."""
        self.add_node(
            sid,
            fingerprint=report.fingerprint.hex(),
            violations=violation_kinds(report, deadlock),
            enabled=sorted({t.actor for t in report.transitions}),
            done=report.all_done,
            labels=dict(report.labels),
        )

    def add_step(self, u: int, v: int, step: Step, once: bool = False) -> None:
        """Record the transition ``step`` from state ``u`` to ``v``.

        With ``once``, a step already on the edge (same position, actor and
        label) is not added again: the notebook meets a transition each time
        it steps or merges a run's graph.
        """
        label = f"{step.actor}: {step.label}"
        if not self.has_edge(u, v):
            self.add_edge(u, v, label=label, labels=[label], actor=step.actor, steps=[step])
            return
        edge = self.edges[u, v]
        if once and any((s.index, s.actor, s.label) == (step.index, step.actor, step.label) for s in edge["steps"]):
            return
        if not once or label not in edge["labels"]:
            edge["labels"].append(label)
        edge["steps"].append(step)
