"""Models: the ``@forkcheck.model`` decorator and the :class:`Model` it builds."""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Callable

from ._errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from ._results import CheckResult


class Model:
    """A setup function bound to its arguments; nothing runs until :meth:`check`.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def counter(n=2):
    ...     state = {"count": 0}
    ...     async def inc():
    ...         state["count"] += 1
    ...     for _ in range(n):
    ...         fc.spawn(inc)
    ...     fc.invariant(lambda: state["count"] <= n)
    >>> m = counter(n=3)
    >>> m
    counter(n=3)
    >>> m.check().ok
    True
    """

    def __init__(self, fn: Callable, args: tuple = (), kwargs: dict | None = None) -> None:
        self.fn = fn
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})

    @property
    def name(self) -> str:
        """The setup function's name, as results and the command line show it."""
        return getattr(self.fn, "__name__", "model")

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    def check(self, strategy: str = "dfs", max_depth: int | None = None, jobs: int = 1, deadlock: bool = True,
              seed: int = 0, fingerprint: str = "state", **options: Any) -> CheckResult:
        """Explore every state of the model and check its properties.

        Parameters
        ----------
        strategy : {"dfs", "bfs", "random"}
            Search order.  BFS finds shortest counterexamples; "random" runs
            random walks (``walks`` of them, default 100) chosen by ``seed``.
        max_depth : int, optional
            Do not take transitions beyond this depth.
        jobs : int
            Snapshot processes expanding states at the same time.
        deadlock : bool
            Report states where no actor can move (and not all have returned).
        seed : int
            Seed of the random strategy.
        fingerprint : {"state", "pages"}
            How revisited states are recognised: "state" hashes the program's
            objects (sound and precise); "pages" hashes its memory pages through
            /proc (sound, experimental: it rarely merges states, see docs/pages.md).
        **options
            ``stop_on_violation`` (default True), ``walks``, ``max_states``,
            ``time_limit``, ``transition_timeout`` (seconds, default 30),
            ``determinism_checks`` (default 20), ``fairness`` ("weak", "strong",
            "none"), ``max_snapshots``, ``snapshot`` ("fork" or "replay"),
            ``memory_limit`` (bytes), ``huge_pages`` (default on, off with
            ``fingerprint="pages"``: the snapshots' heap on 2 MiB pages, so that
            big heaps fork fast), ``opaque`` ("error", the default: a state
            holding an object whose contents the fingerprint cannot see is an
            :class:`forkcheck.OpaqueStateError`; "distinct": such states are
            never merged, with an :class:`forkcheck.OpaqueStateWarning`),
            ``progress`` (a callable).  See docs/guide.md.

        Returns
        -------
        CheckResult

        Examples
        --------
        >>> import forkcheck as fc
        >>> @fc.model
        ... def race():
        ...     state = {"n": 0}
        ...     async def inc():
        ...         tmp = state["n"]
        ...         await fc.checkpoint()
        ...         state["n"] = tmp + 1
        ...         assert state["n"] == 2 or len(done) == 0, "an update was lost"
        ...         done.append(1)
        ...     done = []
        ...     fc.spawn(inc); fc.spawn(inc)
        >>> r = race.check(strategy="bfs")
        >>> r.violations[0].kind, len(r.violations[0].trace)
        ('assertion', 2)
        """
        from ._check.search import check

        return check(self, strategy=strategy, max_depth=max_depth, jobs=jobs, deadlock=deadlock, seed=seed,
                     fingerprint=fingerprint, **options)


class ModelFactory:
    """What ``@forkcheck.model`` returns: call it with arguments to get a :class:`Model`.

    ``factory.check(...)`` checks the model with its default arguments.
    """

    def __init__(self, fn: Callable) -> None:
        if inspect.iscoroutinefunction(fn):
            raise UsageError(f"@forkcheck.model decorates the setup function, which must be a plain `def`; "
                             f"{fn.__qualname__} is async: make it `def` and spawn the async actors with fc.spawn()")
        self.fn = fn
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Model:
        try:
            inspect.signature(self.fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise UsageError(f"{self.fn.__name__}{inspect.signature(self.fn)}: {exc}") from None
        return Model(self.fn, args, kwargs)

    def check(self, *args: Any, **kwargs: Any) -> CheckResult:
        """``factory.check(...)`` is ``factory().check(...)``."""
        return self().check(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<forkcheck model {self.fn.__qualname__}{inspect.signature(self.fn)}>"


def model(fn: Callable) -> ModelFactory:
    """Decorate a setup function to make a model.

    The setup function runs in the root snapshot process: it builds the shared
    state, spawns actors with :func:`forkcheck.spawn`, declares properties, and
    may return a *view* of the state (what ``Node.eval`` hands to its function).

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def hello():
    ...     async def greeter():
    ...         await fc.checkpoint()
    ...     fc.spawn(greeter)
    >>> hello.check().stats.states
    2
    """
    return ModelFactory(fn)


def as_model(obj: Any) -> Model:
    """Accept a Model or a decorated function (its default arguments)."""
    if isinstance(obj, Model):
        return obj
    if isinstance(obj, ModelFactory):
        return obj()
    raise UsageError(f"expected a forkcheck model (a @forkcheck.model function or a Model), got {type(obj).__name__} {obj!r}")
