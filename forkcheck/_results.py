"""Check results: violations, statistics, the state graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import PropertyViolation
from ._trace import Trace, format_state

if TYPE_CHECKING:  # pragma: no cover
    import networkx


@dataclass
class Violation:
    """A property that fails, with the trace that leads to it.

    ``kind`` is one of "invariant", "assertion", "exception", "deadlock",
    "crash", "timeout", "nondeterminism", "liveness"; ``name`` is the property
    or actor concerned; ``details`` holds a traceback where there is one and
    ``state`` a description of the violating state.
    """

    kind: str
    name: str
    message: str
    trace: Trace
    details: str = ""
    state: Any = None
    model: str = ""

    def format(self) -> str:
        where = "in the initial state" if len(self.trace) == 0 else f"after {len(self.trace)} steps"
        out = [f"{self.kind} violation {where}: {self.message}", "", "Counterexample:", self.trace.format()]
        if self.details:
            out += ["", self.details.rstrip()]
        if self.state is not None:
            out += ["", "State at the violation:", format_state(self.state)]
        out += ["", "Replay it with:", f"  forkcheck.replay({self.model or 'model'}, {self.trace.token!r})"]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()

    def _repr_html_(self) -> str:
        from ._notebook import violation_html

        return violation_html(self)


@dataclass
class MemoryStats:
    """Live snapshot processes and their memory at the peak.

    The byte figures come from one sample of the live snapshots, taken when
    ``sampled_snapshots`` of them were alive: usually within 10 % of
    ``peak_snapshots`` (see ``forkcheck/_memory.py``).
    """

    peak_snapshots: int = 0
    private_bytes: int | None = None
    logical_bytes: int | None = None
    sharing: float | None = None
    private_per_snapshot: int | None = None
    sampled_snapshots: int = 0


@dataclass
class Stats:
    """Counts of a check: ``states`` distinct states, ``transitions`` executed from them.

    ``seconds`` is the whole check; ``setup_seconds`` the part of it spent
    starting the root snapshot process and running the model's setup.
    """

    states: int = 0
    transitions: int = 0
    max_depth: int = 0
    seconds: float = 0.0
    setup_seconds: float = 0.0
    memory: MemoryStats = field(default_factory=MemoryStats)


@dataclass
class CheckResult:
    """The outcome of :meth:`Model.check`.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def one():
    ...     async def a():
    ...         await fc.checkpoint()
    ...     fc.spawn(a)
    >>> r = one.check()
    >>> r.ok, r.stats.states, r.graph.number_of_nodes()
    (True, 2, 2)
    >>> r.assert_ok()
    """

    violations: list[Violation]
    stats: Stats
    graph: networkx.DiGraph
    complete: bool = True
    model: str = ""
    discoveries: dict[str, Trace | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        s = self.stats
        head = "Done." if self.complete else "Stopped early."
        text = f"{head} states={s.states}, transitions={s.transitions}, depth={s.max_depth}, {s.seconds:.2f}s"
        if s.memory.sharing is not None:
            text += f", sharing={s.memory.sharing:.1%}"
        if self.violations:
            kinds = ", ".join(sorted({v.kind for v in self.violations}))
            text += f"; {len(self.violations)} violation{'s' if len(self.violations) > 1 else ''} ({kinds})"
        else:
            text += "; no violation"
        return text

    def __repr__(self) -> str:
        return f"<CheckResult {self.summary()}>"

    def __str__(self) -> str:
        parts = [self.summary()]
        for v in self.violations:
            parts += ["", v.format()]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        from ._notebook import result_html

        return result_html(self)

    def assert_ok(self) -> None:
        """Raise :class:`forkcheck.PropertyViolation` showing the first counterexample, if any."""
        if self.violations:
            raise PropertyViolation(f"{self.model or 'model'}: {self.summary()}\n\n{self.violations[0].format()}",
                                    self.violations)
