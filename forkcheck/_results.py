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
    ``state`` a description of the violating state.  ``command`` is the shell
    command that replays it (``forkcheck replay FILE:MODEL TOKEN``) when the
    model lives at module level of a file, else "".  For an asyncio program,
    ``deviations`` counts the steps of the trace that leave the event loop's
    first-in first-out order (0: stock asyncio runs this schedule); None for
    other models.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def coin():
    ...     async def flip():
    ...         assert await fc.choose(["heads", "tails"]) == "heads", "tails"
    ...     fc.spawn(flip)
    >>> v = coin.check().violations[0]
    >>> v.kind, v.message, len(v.trace)
    ('assertion', 'assertion failed in actor flip: tails', 1)
    """

    kind: str
    name: str
    message: str
    trace: Trace
    details: str = ""
    state: Any = None
    model: str = ""
    command: str = ""
    deviations: int | None = None

    @property
    def when(self) -> str:
        """``"after 3 steps"`` (``"in the initial state"``), with the deviations of an asyncio program's trace."""
        n = len(self.trace)
        text = "in the initial state" if n == 0 else f"after {n} step{'s' if n > 1 else ''}"
        if self.deviations is not None:
            d = self.deviations
            text += (" with 0 deviations from FIFO (stock asyncio runs this schedule)" if d == 0
                     else f" with {d} deviation{'s' if d > 1 else ''} from FIFO")
        return text

    @property
    def state_heading(self) -> str:
        """What :attr:`state` describes: the violating state, or for a lasso the state where its loop starts."""
        if self.trace.cycle_start is not None:
            return "State where the loop starts (and to which it returns)"
        if self.kind == "liveness":
            return "State where the run ends"
        return "State at the violation"

    def format(self) -> str:
        """The violation as text: the message, the counterexample step by step, the state, how to replay it."""
        out = [f"{self.kind} violation {self.when}: {self.message}", "", "Counterexample:", self.trace.format()]
        if self.details:
            out += ["", self.details.rstrip()]
        if self.state is not None:
            out += ["", f"{self.state_heading}:", format_state(self.state)]
        out += ["", "Replay it with:", f"  forkcheck.replay({self.model or 'model'}, {self.trace.token!r})"]
        if self.command:
            out.append(f"  {self.command}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()

    def _repr_html_(self) -> str:
        from ._html import violation_html

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
    """Counts of a check: ``states`` distinct states, ``transitions`` explored from them.

    Each transition of the graph (a state and one of its enabled transitions)
    counts once, under every strategy: one a random walk takes again, or that
    a bounded DFS takes again from a state it re-expands, is not counted twice.

    ``seconds`` is the whole check; ``setup_seconds`` the part of it spent
    starting the root snapshot process and running the model's setup.

    ``reduction`` is the reduction that ran ("none", "sleep", "por", see
    docs/reductions.md) and ``skipped`` how many transitions of the states
    it expanded it did not take (0 without a reduction).

    ``symmetry`` names the :func:`forkcheck.symmetric` sets the states were
    reduced by, with their sizes (empty without symmetry): ``states`` then
    counts one state per permutation of their values.
    """

    states: int = 0
    transitions: int = 0
    max_depth: int = 0
    seconds: float = 0.0
    setup_seconds: float = 0.0
    memory: MemoryStats = field(default_factory=MemoryStats)
    reduction: str = "none"
    skipped: int = 0
    symmetry: dict[str, int] = field(default_factory=dict)


@dataclass
class CheckResult:
    """The outcome of :meth:`Model.check`.

    ``incomplete`` lists why the search left part of the reachable graph
    unexplored (random walks, the first violation stopping it, ``max_depth``
    cutting states, ``max_states``, ``time_limit``, an interrupt); it is empty
    when the graph is complete, and ``complete`` is then True.  A "no
    violation" from an incomplete search covers only the states it reached.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def one():
    ...     async def a():
    ...         await fc.checkpoint()
    ...     fc.spawn(a)
    >>> r = one.check()
    >>> r.ok, r.stats.states, r.graph.number_of_nodes(), r.complete
    (True, 2, 2, True)
    >>> r.assert_ok()
    >>> one.check(max_depth=0).incomplete
    ['max_depth=0 cut 1 state']
    """

    violations: list[Violation]
    stats: Stats
    graph: networkx.DiGraph
    complete: bool = True
    model: str = ""
    discoveries: dict[str, Trace | None] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # One truth, two spellings: ``complete`` is False exactly when there is a reason.
        self.incomplete = list(self.incomplete)
        if not self.complete and not self.incomplete:
            self.incomplete = ["the search stopped early"]
        self.complete = not self.incomplete

    @property
    def ok(self) -> bool:
        """True when the check found no violation (see :attr:`complete` for whether it saw every state)."""
        return not self.violations

    def summary(self) -> str:
        """One line: whether the search finished, its counts and the kinds of violations found."""
        s = self.stats
        # An interrupted check is no verdict: say so first, and that the counts are partial.
        interrupted = any("interrupted by " in reason for reason in self.incomplete)
        if self.complete:
            head = "Done."
        elif interrupted:
            head = f"Interrupted, partial counts ({'; '.join(self.incomplete)})."
        else:
            head = f"Stopped early ({'; '.join(self.incomplete)})."
        text = f"{head} states={s.states}, transitions={s.transitions}, depth={s.max_depth}, {s.seconds:.2f}s"
        if s.reduction != "none":
            text += f", reduction={s.reduction} ({s.skipped} transition{'s' if s.skipped != 1 else ''} skipped)"
        if s.memory.sharing is not None:
            text += f", sharing={s.memory.sharing:.1%}"
        if s.symmetry:
            sets = ", ".join(f"{name} ({n} value{'s' if n != 1 else ''})" for name, n in s.symmetry.items())
            text += f", symmetry over {sets}"
        if self.violations:
            kinds = ", ".join(sorted({v.kind for v in self.violations}))
            text += f"; {len(self.violations)} violation{'s' if len(self.violations) > 1 else ''} ({kinds})"
        elif interrupted and s.states == 0:
            text += "; nothing checked (interrupted before the initial state was reached)"
        elif interrupted:
            text += "; no violation found before the interrupt"
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
        from ._html import result_html

        return result_html(self)

    def assert_ok(self) -> None:
        """Raise :class:`forkcheck.PropertyViolation` showing every counterexample, if any.

        The message's first line says what failed (what a test runner's
        summary line shows); then come the summary and each violation with
        its counterexample and the lines that replay it.  Under pytest this
        frame is hidden from the traceback.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        if self.violations:
            n = len(self.violations)
            what = self.violations[0].message if n == 1 else \
                f"{n} violations: " + "; ".join(v.message for v in self.violations)
            parts = [f"{self.model or 'model'}: {what}", self.summary()]
            for k, v in enumerate(self.violations, 1):
                parts += ["", (f"[{k} of {n}] " if n > 1 else "") + v.format()]
            raise PropertyViolation("\n".join(parts), self.violations)
