"""Which of a state's enabled transitions the search takes: the piece beside the strategy.

A strategy decides the order in which states are expanded; a reduction
decides which transitions of an expanded state are forked (SimGrid keeps them
apart the same way: ``explo/`` and ``explo/reduction/``).  ``NoReduction``
takes every transition; partial-order and sleep-set reductions plug in here,
each tested against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from .search import Node


class Reduction(Protocol):
    """The interface ``Search.expand`` calls."""

    name: str

    def to_expand(self, node: Node) -> list[int]:
        """The positions, among ``node``'s enabled transitions, to fork, in the order to fork them."""
        ...  # pragma: no cover


class NoReduction:
    """Every enabled transition of every state: the full search."""

    name = "none"

    def to_expand(self, node: Node) -> list[int]:
        return list(range(len(node.report.transitions)))


REDUCTIONS = {"none": NoReduction}
