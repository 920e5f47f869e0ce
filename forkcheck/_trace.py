"""Traces (paths through the state graph), their replay tokens, and replay results."""

from __future__ import annotations

import base64
import json
import os
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from . import _where
from ._errors import UsageError

_TOKEN_PREFIX = "fc1:"


@dataclass(frozen=True)
class Step:
    """A transition, as the explorer side knows it: ``actor`` takes ``label`` at ``where`` (file:line).

    ``index`` is the transition's position among those enabled in the state it
    is taken from.  In a trace, ``fingerprint`` identifies the state it led to;
    a notebook node's enabled transitions (``Node.transitions``), not taken
    yet, have none.  ``str(step)`` is ``"actor: label"``, the text that
    ``Node.step`` accepts.

    Examples
    --------
    >>> from forkcheck import Step
    >>> str(Step(0, "phil0", "acquire fork0", "dining_philosophers.py:23"))
    'phil0: acquire fork0'
    """

    index: int
    actor: str
    label: str
    where: str = ""
    fingerprint: str = ""
    #: An asyncio program's step: 1 if it is a deviation from the loop's first-in first-out order.
    deviation: int = 0
    #: An asyncio program's step: where the task stopped (``file:line (what)``) or what the callback did.
    to: str = ""

    @classmethod
    def of(cls, index: int, info: Any, fingerprint: str = "", to: str = "") -> Step:
        """The step that takes transition ``index``, described by ``info`` (a ``TransitionInfo``)."""
        return cls(index, info.actor, info.label, info.where, fingerprint, info.deviation, to)

    def __str__(self) -> str:
        return f"{self.actor}: {self.label}"

    def text(self) -> str:
        """What the step did: ``actor: label``, or for an asyncio program ``label -> where it stopped``."""
        return f"{self.label} -> {self.to}" if self.to else str(self)

    def format(self) -> str:
        """``"actor: label  (file:line)"``: the step as a trace prints it (an asyncio step: :meth:`text`)."""
        if self.to or not self.where:
            return self.text()
        return f"{self}  ({_where.short(self.where)})"


class Trace(Sequence[Step]):
    """A path from the initial state; ``len(trace)`` counts its transitions.

    For a liveness counterexample the trace is a lasso: ``trace[cycle_start:]``
    repeats forever.  ``trace.token`` is a string that :func:`forkcheck.replay`
    and ``forkcheck replay`` accept.  ``module`` is the name of the module
    that defined the model when the trace was found, where it is not the
    command line's own (``__main__`` for a script, ``test_x`` under pytest):
    the token carries it, so that ``forkcheck replay FILE:MODEL`` imports
    that file under the same name (class and enum names include it, and so do
    the fingerprints of states that hold them).  ``model`` is the model the
    trace was found on (``philosophers(n=4)``): a replay that does not
    reproduce it names the arguments first when they differ.
    ``symmetry`` is False for a trace found by ``check(symmetry=False)``:
    its fingerprints are those of the states themselves, and replay compares
    them so (the token says it).

    Examples
    --------
    >>> from forkcheck._trace import Trace, Step
    >>> t = Trace([Step(0, "a", "checkpoint"), Step(1, "b", "choose 2")])
    >>> len(t), [s.actor for s in t]
    (2, ['a', 'b'])
    >>> Trace.from_token(t.token) == t
    True
    """

    def __init__(self, steps: Sequence[Step] = (), cycle_start: int | None = None, module: str | None = None,
                 model: str | None = None, symmetry: bool = True) -> None:
        self.steps = list(steps)
        self.cycle_start = cycle_start
        self.module = module
        self.model = model
        self.symmetry = symmetry

    @property
    def deviations(self) -> int:
        """How many steps of an asyncio program's trace leave the loop's first-in first-out order (0: stock asyncio takes them)."""
        return sum(s.deviation for s in self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i):
        return self.steps[i]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return [(s.index, s.actor, s.label) for s in self.steps] == [(s.index, s.actor, s.label) for s in other.steps] \
            and self.cycle_start == other.cycle_start

    def __repr__(self) -> str:
        return f"<Trace of {len(self)} steps {self.token}>"

    @property
    def token(self) -> str:
        """A compact, paste-able string that identifies this trace."""
        payload: dict[str, object] = {"s": [[s.index, s.actor, s.label, s.fingerprint[:8]] for s in self.steps]}
        if self.cycle_start is not None:
            payload["c"] = self.cycle_start
        if self.module:
            payload["m"] = self.module
        if self.model:
            payload["r"] = self.model
        if not self.symmetry:
            payload["y"] = 0
        raw = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 9)
        return _TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str) -> Trace:
        """Decode a token made by :attr:`token`; a malformed one raises UsageError."""
        token = token.strip()
        if not token.startswith(_TOKEN_PREFIX):
            raise UsageError(f"{token[:20]!r} is not a forkcheck trace token: tokens start with {_TOKEN_PREFIX!r}; "
                             "copy the whole token from the report")
        try:
            body = token[len(_TOKEN_PREFIX):]
            d = zlib.decompressobj()
            raw = d.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            if not d.eof or d.unused_data:
                raise ValueError("trailing data")
            payload = json.loads(raw)
            steps = [Step(int(i), str(a), str(lbl), "", str(fp)) for i, a, lbl, fp in payload["s"]]
            module, model = payload.get("m"), payload.get("r")
            if not all(x is None or isinstance(x, str) for x in (module, model)):
                raise ValueError("module or model")
            symmetry = bool(payload.get("y", 1))
        except Exception:  # noqa: BLE001 - any decoding failure means the same thing to the user
            raise UsageError("the trace token is damaged (truncated or edited?): copy the whole token from the report") from None
        return cls(steps, payload.get("c"), module, model, symmetry)

    def format(self) -> str:
        """The steps, numbered, one per line (the loop marked for a lasso)."""
        lines = []
        for i, s in enumerate(self.steps, 1):
            if self.cycle_start is not None and i - 1 == self.cycle_start:
                lines.append("  -- loop starts here --")
            lines.append(f"  {i:>3}. {s.format()}")
        if self.cycle_start is not None:
            lines.append(f"  -- then back to step {self.cycle_start + 1}, forever --")
        return "\n".join(lines) if lines else "  (the initial state)"

    def __str__(self) -> str:
        return self.format()

    def _repr_html_(self) -> str:
        from ._html import trace_html

        return trace_html(self)


@dataclass
class ReplayStep:
    """A step of :func:`forkcheck.replay` and the state after it."""

    actor: str
    label: str
    where: str
    state: object  # a _protocol.Description
    fingerprint: str
    violations: list = field(default_factory=list)
    deviation: int = 0  # asyncio: a step away from the loop's first-in first-out order
    to: str = ""  # asyncio: where the task stopped, or what the callback did

    def __str__(self) -> str:
        if self.to:
            return f"{self.label} -> {self.to}"
        return f"{self.actor}: {self.label}" + (f"  ({_where.short(self.where)})" if self.where else "")


class Replay(list):
    """What :func:`forkcheck.replay` returns: a list of :class:`ReplayStep`.

    ``initial`` is the description of the initial state and ``violations`` those
    found in the last state.  ``cycle_start`` is, for a lasso (a liveness
    counterexample), the index of the step where the loop starts, else None:
    replay checks that the last step leads back to the state before that step,
    not the liveness property itself.  ``notes`` lists what differed from the
    trace without changing a state (a label that reads differently).
    """

    def __init__(self, steps=(), initial=None, violations=None, cycle_start=None, notes=None) -> None:
        super().__init__(steps)
        self.initial = initial
        self.violations = list(violations or [])
        self.cycle_start = cycle_start
        self.notes = list(notes or [])


def format_state(desc, indent: str = "  ") -> str:
    """Human text for a _protocol.Description: each actor's position and locals, then shared state."""
    if desc is None:
        return ""
    lines = []
    shared = getattr(desc, "shared", None) or {}  # descriptions made before it existed have none
    for a in desc.actors:
        pos = f" at {_where.short(a.where)}" if a.where else ""
        status = f"waiting for {a.waiting}" if a.waiting and a.status == "waiting" else \
            f"{a.status}, waiting for {a.waiting}" if a.waiting else a.status
        lines.append(f"{indent}{a.name}: {status}{pos}")
        for fn, where, loc in a.frames:
            shown = ", ".join(f"{k}={v}" for k, v in loc.items() if k not in shared)
            if shown:
                lines.append(f"{indent}    {fn.rpartition('<locals>.')[2]}: {shown}")
    once = [f"{k}={v}" for k, v in shared.items() if v is not None]
    if once:
        lines.append(f"{indent}shared by the actors: " + ", ".join(once))
    if desc.view is not None:
        lines.append(f"{indent}state: {desc.view}")
    elif desc.globals:
        for k, v in desc.globals.items():
            lines.append(f"{indent}{k} = {v}")
    return "\n".join(lines)
