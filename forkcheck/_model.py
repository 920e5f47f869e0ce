"""Models: the ``@forkcheck.model`` decorator and the :class:`Model` it builds."""

from __future__ import annotations

import ast
import functools
import inspect
import os
import shlex
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from ._errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from ._check.options import CheckOptions
    from ._results import CheckResult

F = TypeVar("F", bound=Callable[..., Any])

#: The start of the name under which the command line imports a model file by path
#: (``_forkcheck_file_<stem>``); trace tokens leave such a name out (see Trace.module).
FILE_MODULE_PREFIX = "_forkcheck_file_"

#: Called at the start of every check while the command line imports a target file, so that it
#: can say that the file runs a check when imported (the command then runs it too).
on_check: Callable[[], None] | None = None


def _option_keywords(fn: F) -> F:
    """Decorate a ``check`` that declares every option as a keyword: it receives them as one ``options``.

    The decorated function declares each option as a keyword-only parameter
    (for the IDE, the type checker and ``help()``) plus ``options``; the
    wrapper refuses an unknown keyword with the one-line UsageError of
    ``CheckOptions.parse`` (not Python's TypeError), builds the CheckOptions
    from the keywords actually given (over ``options`` when given: they
    replace its fields), and calls ``fn`` with ``options=`` alone.  Only the
    wrapper sees which keywords the caller wrote, which is why this is a
    decorator: a keyword given with its default value still replaces the field
    of ``options``.  tests/test_options.py holds the declared keywords equal to
    the CheckOptions fields.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Any:
        # Imported here: snapshot processes import this module, and must not load the explorer's side.
        from ._check.options import CheckOptions

        given = kw.pop("options", None)
        options = CheckOptions.parse(given, **kw)
        if on_check is not None:
            on_check()
        return fn(*args, options=options)

    return wrapper  # type: ignore[return-value]


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

    #: What the snapshot process runs: "model" (a setup function and its actors) or "asyncio" (an asyncio program).
    program = "model"
    #: The decorator's class for this kind of model (binds other arguments to the same function).
    factory_class: type[ModelFactory]

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

    @_option_keywords
    def check(self, *, strategy: str = "bfs", max_depth: int | None = None, jobs: int = 1, deadlock: bool = True,
              seed: int = 0, fingerprint: str = "state", stop_on_violation: bool = True, walks: int = 100,
              max_states: int | None = None, transition_timeout: float = 30.0, time_limit: float | None = None,
              progress: Callable[[dict], None] | None = None, determinism_checks: int = 20, fairness: str = "weak",
              max_snapshots: int | None = None, snapshot: str = "fork", memory_limit: int | None = None,
              huge_pages: bool | None = None, opaque: str = "error", reduction: str = "none",
              max_deviations: int | None = None, symmetry: bool = True, backend: str = "local",
              workers: int | None = None, ray_address: str | None = None,
              options: CheckOptions | None = None) -> CheckResult:
        """Explore every state of the model and check its properties.

        Every option is a keyword; :class:`forkcheck.CheckOptions` holds them
        as one object.  A bad value or an unknown keyword is a one-line
        :class:`forkcheck.UsageError`.  On the command line each option has a
        flag (``max_depth``: ``--max-depth``; see docs/cli.md).

        Parameters
        ----------
        strategy : {"bfs", "dfs", "random"}
            Search order.  "bfs" (the default) finds shortest counterexamples;
            "dfs" reaches deep states sooner (its counterexamples are shortened
            through the graph it explored); "random" runs ``walks`` random walks
            chosen by ``seed``.
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
        stop_on_violation : bool
            Stop at the first violation (default); False explores the whole
            graph: a counterexample for every property violated, and liveness
            judged too.
        walks : int
            Random walks of the random strategy (default 100).
        max_states : int, optional
            Stop after this many distinct states (the result is then incomplete).
        transition_timeout : float
            Seconds a transition may take before it is a ``timeout`` violation
            (default 30).
        time_limit : float, optional
            Stop after this many seconds (the result is then incomplete).
        progress : callable, optional
            Called with a dict of counts about four times a second.
        determinism_checks : int
            The first this many states take each transition twice to catch
            nondeterminism (default 20; 0 turns it off).
        fairness : {"weak", "strong", "none"}
            Fairness assumed when judging liveness properties.
        max_snapshots : int, optional
            The most snapshot processes alive at once (>= 4; default: from
            the machine's memory and process limits).
        snapshot : {"fork", "replay"}
            A forked process per state, or none (every state rebuilt from the
            root: a reference mode).
        memory_limit : int, optional
            Address-space limit of every snapshot process, in bytes (>= 64 MiB).
        huge_pages : bool, optional
            The snapshots' heap on 2 MiB pages, so that big heaps fork fast
            (None, the default: on, off with ``fingerprint="pages"``).
        opaque : {"error", "distinct"}
            A state holding an object whose contents the fingerprint cannot
            see: "error" (the default) is an :class:`forkcheck.OpaqueStateError`;
            "distinct" never merges such states, with an
            :class:`forkcheck.OpaqueStateWarning`.
        reduction : {"none", "sleep", "por"}
            Which transitions are taken (docs/reductions.md): all ("none", the
            default), all but those that only reorder independent steps
            ("sleep": the same states), or only a persistent set of them
            where that is safe ("por": fewer states, every deadlock and safety
            violation still found).
        max_deviations : int, optional
            An asyncio program only: the most steps away from the event loop's
            first-in first-out order a schedule may take (0: what stock asyncio
            runs); None, the default: any order.
        symmetry : bool
            With values declared by :func:`forkcheck.symmetric`: states that
            differ only by a permutation of them count once (True, the
            default); False explores every state (docs/symmetry.md).
        backend : {"local", "ray"}
            "local" (the default) explores on this machine; "ray" on the
            workers of a Ray cluster (docs/distributed.md): the same states,
            transitions and violations, counterexamples shortest.
        workers : int, optional
            With ``backend="ray"``: how many explorers (one CPU each; default:
            one per CPU of the cluster).
        ray_address : str, optional
            With ``backend="ray"``: the cluster's head (``"HOST:PORT"`` or
            ``"auto"``); None starts a private local cluster on loopback.
        options : CheckOptions, optional
            Prepared options; the keywords given with it replace its fields
            (as :func:`dataclasses.replace` does).  See docs/guide.md.

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

        Prepared options, with a keyword replacing one of them:

        >>> from forkcheck._check.options import CheckOptions
        >>> bfs = CheckOptions(strategy="bfs", stop_on_violation=False)
        >>> race.check(options=bfs, max_depth=1).stats.states
        3
        """
        # @_option_keywords folded the keywords into `options`: the parameters above are
        # declared for the IDE, the type checker and help(), and read from there.
        from ._check.search import check

        return check(self, options)


class ModelFactory:
    """What ``@forkcheck.model`` returns: call it with arguments to get a :class:`Model`.

    ``factory.check(...)`` checks the model with its default arguments.
    """

    #: The class of the models it makes.
    model_class: type[Model] = Model

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
        return self.model_class(self.fn, args, kwargs)

    @_option_keywords
    def check(self, *, strategy: str = "bfs", max_depth: int | None = None, jobs: int = 1, deadlock: bool = True,
              seed: int = 0, fingerprint: str = "state", stop_on_violation: bool = True, walks: int = 100,
              max_states: int | None = None, transition_timeout: float = 30.0, time_limit: float | None = None,
              progress: Callable[[dict], None] | None = None, determinism_checks: int = 20, fairness: str = "weak",
              max_snapshots: int | None = None, snapshot: str = "fork", memory_limit: int | None = None,
              huge_pages: bool | None = None, opaque: str = "error", reduction: str = "none",
              max_deviations: int | None = None, symmetry: bool = True, backend: str = "local",
              workers: int | None = None, ray_address: str | None = None,
              options: CheckOptions | None = None) -> CheckResult:
        """``factory.check(...)`` is ``factory().check(...)``: see :meth:`Model.check` for the options."""
        # The same keywords as Model.check, spelled out again so that the IDE shows them here too.
        return self().check(options=options)

    def __repr__(self) -> str:
        return f"<forkcheck model {self.fn.__qualname__}{inspect.signature(self.fn)}>"


Model.factory_class = ModelFactory


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


def replay_command(target: str, token: str, arg_items: Sequence[str] = (),
                   transition_timeout: float | None = None) -> str:
    """The ``forkcheck replay`` command line that re-executes ``token``, shell-quoted.

    ``transition_timeout``: the check's, when not the default (30 s): the
    replay then gets the same budget per step.

    Examples
    --------
    >>> print(replay_command("m.py:greeter", "fc1:abc", ["name='bob'"]))
    forkcheck replay m.py:greeter fc1:abc --arg 'name='"'"'bob'"'"''
    >>> print(replay_command("m.py:slow", "fc1:abc", transition_timeout=90.0))
    forkcheck replay m.py:slow fc1:abc --transition-timeout 90
    """
    words = ["forkcheck", "replay", target, token]
    for item in arg_items:
        words += ["--arg", item]
    if transition_timeout is not None and transition_timeout != 30.0:
        words += ["--transition-timeout", f"{transition_timeout:g}"]
    return " ".join(shlex.quote(w) for w in words)


def shell_target(model: Model) -> tuple[str, list[str]] | None:
    """``FILE:NAME`` and the ``--arg`` items that name ``model`` on the command line, or None.

    Only a model that lives at module level of a ``.py`` file has them
    (not one defined in a function, a notebook or the interpreter's prompt),
    and only when each argument is a Python literal.  The file is relative to
    the current directory when it is under it.

    Examples
    --------
    >>> import forkcheck as fc
    >>> shell_target(fc.model(lambda: None)()) is None  # not at module level of a file
    True
    """
    fn = model.fn
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    if module is None or not isinstance(path, str) or not path.endswith(".py") or not os.path.isfile(path):
        return None
    name, items = None, []
    for attr, v in list(vars(module).items()):
        if isinstance(v, ModelFactory) and v.fn is fn:
            name = attr
            break
    if name is not None:
        try:
            bound = inspect.signature(fn).bind(*model.args, **model.kwargs)
        except (TypeError, ValueError):
            return None
        for k, value in bound.arguments.items():
            if bound.signature.parameters[k].kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                return None
            text = repr(value)
            try:
                if ast.literal_eval(text) != value:
                    return None
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return None
            items.append(f"{k}={text}")
    else:
        for attr, v in list(vars(module).items()):
            if isinstance(v, Model) and v.fn is fn and v.args == model.args and v.kwargs == model.kwargs:
                name = attr
                break
    if name is None:
        return None
    path = os.path.abspath(path)
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive (Windows)
        rel = path
    return f"{path if rel.startswith('..') else rel}:{name}", items


def bound_repr(model: Model) -> str:
    """``model`` with every argument of its setup function by name, defaults included.

    Two models with this text run the same setup with the same arguments
    (``die_hard()`` and ``die_hard(goal=4)`` when 4 is the default).

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def jugs(big=5, goal=4):
    ...     pass
    >>> bound_repr(jugs(goal=4)), bound_repr(jugs(6))
    ('jugs(big=5, goal=4)', 'jugs(big=6, goal=4)')
    """
    try:
        bound = inspect.signature(model.fn).bind(*model.args, **model.kwargs)
    except (TypeError, ValueError):
        return repr(model)
    bound.apply_defaults()
    return f"{model.name}({', '.join(f'{k}={v!r}' for k, v in bound.arguments.items())})"


class AsyncioModel(Model):
    """An asyncio program bound to its arguments: what calling an :func:`asyncio_model` function gives."""

    program = "asyncio"


class AsyncioModelFactory(ModelFactory):
    """What ``@forkcheck.asyncio_model`` returns: call it with arguments to get an :class:`AsyncioModel`."""

    model_class = AsyncioModel

    def __init__(self, fn: Callable) -> None:
        if inspect.isasyncgenfunction(fn) or not callable(fn) or inspect.iscoroutine(fn) or isinstance(fn, type):
            what = "a coroutine (already called)" if inspect.iscoroutine(fn) else f"{type(fn).__name__} {fn!r}"
            if inspect.iscoroutine(fn):
                fn.close()  # it will never run: no "never awaited" warning on top of this error
            raise UsageError(f"@forkcheck.asyncio_model decorates the program's async def main, or a function that "
                             f"runs it (asyncio.run(...)); it got {what}")
        self.fn = fn
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<forkcheck asyncio model {self.fn.__qualname__}{inspect.signature(self.fn)}>"


def asyncio_model(fn: Callable) -> AsyncioModelFactory:
    """Decorate an unmodified asyncio program to check it: its ``async def main``, or a function that runs it.

    The program runs in the root snapshot process on an event loop that
    forkcheck controls (docs/asyncio.md): every callback the loop would run is
    a transition, first in first out as stock asyncio runs them or, as a
    *deviation*, in any other order (and timers may fire early); time is
    virtual.  A function that is not ``async`` is called as it is and may call
    ``asyncio.run(...)`` itself (an application's entry point).  Main may
    declare ``fc.invariant(...)`` and ``fc.constraint(...)`` before its first
    ``await``.  A failed assertion, an exception out of main, a task
    exception never retrieved, a callback that runs past
    ``transition_timeout``, and a deadlock are violations; each
    counterexample says how many deviations it needs (0: stock asyncio runs
    it).

    Examples
    --------
    >>> import asyncio, forkcheck as fc
    >>> @fc.asyncio_model
    ... async def main(n=2):
    ...     counter = {"x": 0}
    ...     async def inc():
    ...         tmp = counter["x"]
    ...         await asyncio.sleep(0)
    ...         counter["x"] = tmp + 1
    ...     await asyncio.gather(*(inc() for _ in range(n)))
    ...     assert counter["x"] == n, f"lost an update: {counter['x']}"
    >>> v = main.check().violations[0]
    >>> v.kind, v.deviations
    ('assertion', 0)
    """
    return AsyncioModelFactory(fn)


AsyncioModel.factory_class = AsyncioModelFactory
