"""The options of a check, as one typed, validated object: :class:`CheckOptions`.

``Model.check``, ``ModelFactory.check``, the notebook's ``Explorer.run`` and
the command line all build a :class:`CheckOptions`; the explorer
(``search.py``) reads nothing else.  This module imports nothing heavy (no
trio, no networkx), so that the command line can validate its options before
it loads the explorer.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .._errors import UsageError

#: The strategies by name, in the order messages list them.  strategies.py's
#: STRATEGIES has the same keys (a test holds them equal); it is not imported
#: here because it imports trio.
STRATEGY_NAMES = ("bfs", "dfs", "random")
#: The reductions by name (reduction.py's REDUCTION_NAMES, which a test holds equal).
REDUCTION_NAMES = ("none", "sleep", "por")
FINGERPRINT_NAMES = ("state", "pages")
FAIRNESS_NAMES = ("weak", "strong", "none")
SNAPSHOT_NAMES = ("fork", "replay")
OPAQUE_NAMES = ("error", "distinct")


@dataclass(frozen=True)
class Flag:
    """The command-line flag of a check option (in the metadata of its CheckOptions field, key "cli").

    ``value`` says how the flag's text is read: "whole>=N" (a whole number
    of at least N), "int", "seconds" (a number > 0), "size" (bytes, or with
    K, M, G, T), "text?" (any text, which may be left out: the flag alone
    stores None), "" for a flag that takes a choice (``choices``) or none:
    a switch stores ``switch`` into the field.  ``implies`` names other
    fields the flag sets whenever it is given, as ``(field, value)`` pairs
    (``--ray`` chooses ``backend="ray"``, with or without its ADDRESS).
    """

    flag: str
    help: str
    value: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    switch: Any = None
    implies: tuple[tuple[str, Any], ...] = ()


def _cli(flag: str, help: str, value: str = "", metavar: str | None = None, *, choices: tuple[str, ...] = (),
         switch: Any = None, implies: tuple[tuple[str, Any], ...] = ()) -> dict[str, Flag]:
    return {"cli": Flag(flag, help, value, metavar, choices, switch, implies)}


#: Where the search runs: this machine, or the workers of a Ray cluster (docs/distributed.md).
BACKEND_NAMES = ("local", "ray")


@dataclass(frozen=True, kw_only=True)
class CheckOptions:
    """How to explore a model: every option of :meth:`forkcheck.Model.check`, validated once.

    Build it with keywords (``CheckOptions(strategy="bfs", max_depth=10)``);
    a bad value or an unknown keyword is a one-line
    :class:`forkcheck.UsageError`.  It is frozen: derive a variant with
    :func:`dataclasses.replace`, which validates again.  Give it to
    ``Model.check(options=...)``; keywords given with it replace its fields.

    Attributes
    ----------
    strategy : {"bfs", "dfs", "random"}
        Search order.  "bfs" (the default) finds shortest counterexamples;
        "dfs" reaches deep states sooner (its counterexamples are shortened
        through the graph it explored); "random" runs ``walks`` random walks
        chosen by ``seed``.
    max_depth : int or None
        Take no transition beyond this depth (a whole number >= 0); None: no
        bound.
    jobs : int
        Snapshot processes expanding states at the same time (>= 1).
    deadlock : bool
        Report states where no actor can move (and not all have returned).
    seed : int
        Seed of the random strategy.
    fingerprint : {"state", "pages"}
        How revisited states are recognised: "state" hashes the program's
        objects (sound and precise); "pages" hashes its memory pages through
        /proc (sound, experimental: it rarely merges states, see docs/pages.md).
    stop_on_violation : bool
        Stop at the first violation (True, the default); with False the whole
        graph is explored, so that every property violated gets its
        counterexample and liveness properties are judged too.  On the command line: ``--keep-going``.
    walks : int
        Random walks of the random strategy (>= 1, default 100).
    max_states : int or None
        Stop after this many distinct states (the result is then incomplete).
    transition_timeout : float
        Seconds a transition may take before it is a ``timeout`` violation
        (> 0, default 30).
    time_limit : float or None
        Stop after this many seconds (the result is then incomplete).
    progress : callable or None
        Called with a dict of counts (states, transitions, violations, depth,
        live_snapshots, seconds) about four times a second during the search.
    determinism_checks : int
        The first this many states take each of their transitions twice, to
        catch nondeterminism (>= 0, default 20; 0 turns the check off).
    fairness : {"weak", "strong", "none"}
        Fairness assumed when judging liveness properties.
    max_snapshots : int or None
        The most snapshot processes alive at once (>= 4); None: the machine's
        default (see docs/guide.md).
    snapshot : {"fork", "replay"}
        How states are kept: a forked process per state, or none (every state
        rebuilt from the root: a reference mode).
    memory_limit : int or None
        Address-space limit of every snapshot process, in bytes (at least
        64 MiB); None: no limit.
    huge_pages : bool or None
        Put the snapshots' heap on 2 MiB pages, so that big heaps fork fast.
        None (the default) means on, except with ``fingerprint="pages"``, which
        reads 4 KiB pages; it stays None here, so that
        :func:`dataclasses.replace` with another fingerprint resolves it again.
        :attr:`uses_huge_pages` is what the check does.
    opaque : {"error", "distinct"}
        A state holding an object whose contents the fingerprint cannot see:
        "error" refuses it (:class:`forkcheck.OpaqueStateError`); "distinct"
        keeps each such state apart from every other, with an
        :class:`forkcheck.OpaqueStateWarning`.
    reduction : {"none", "sleep", "por"}
        Which transitions of a state are taken (docs/reductions.md): "none"
        all of them (the full search, the default); "sleep" leaves out those
        that only reorder independent steps already taken (sleep sets: the
        same states, fewer transitions); "por" also explores only a
        persistent set of them where that is safe (fewer states; every
        deadlock, invariant violation and failing step is still found).
        Neither works with ``max_depth``, the random strategy, page
        fingerprints, liveness properties or asyncio programs: each combination is a
        :class:`forkcheck.UsageError`.
    max_deviations : int or None
        An asyncio program (:func:`forkcheck.asyncio_model`): the most steps
        away from the event loop's first-in first-out order a schedule may
        take (a whole number >= 0; 0 explores what stock asyncio runs); None,
        the default: any order.  States are explored by increasing number of
        deviations either way (docs/asyncio.md).
    symmetry : bool
        With values declared by :func:`forkcheck.symmetric`, count states
        that differ only by a permutation of them once (True, the default);
        False explores every state, for comparison (docs/symmetry.md).  It
        changes nothing for a model without symmetric values.  On the command
        line: ``--no-symmetry``.
    backend : {"local", "ray"}
        Where the search runs: "local" (this process and its snapshot
        processes), or "ray": ``workers`` explorers on a Ray cluster, each with
        its own snapshot tree, sharing a visited set sharded by fingerprint
        (docs/distributed.md; ``pip install 'forkcheck[ray]'``).
    workers : int or None
        With ``backend="ray"``: how many explorers (>= 1), each taking one CPU
        of the cluster; None: one per CPU of the cluster (at least 2 on a
        local cluster).  Only with ``backend="ray"``.
    ray_address : str or None
        With ``backend="ray"``: the cluster to connect to (``"HOST:PORT"`` of
        its head, or ``"auto"`` for the one ``ray start`` runs on this
        machine); None starts a private local cluster, reachable on loopback
        only, for this check.

    Examples
    --------
    >>> import dataclasses
    >>> from forkcheck._check.options import CheckOptions
    >>> o = CheckOptions(strategy="bfs", max_depth=10)
    >>> o.strategy, o.max_depth, o.jobs
    ('bfs', 10, 1)
    >>> dataclasses.replace(o, fingerprint="pages").uses_huge_pages
    False
    >>> import forkcheck as fc
    >>> try:
    ...     CheckOptions(jobs=0)
    ... except fc.UsageError as e:
    ...     print(e)
    jobs=0: give a whole number >= 1
    """

    # Each field's metadata holds its command-line flag (a Flag, or None for none): the
    # command line builds its parser from these, so an option cannot lack a flag.
    strategy: str = field(default="bfs", metadata=_cli(
        "--strategy", "search order: bfs (default: shortest counterexamples), dfs, random (random walks)",
        choices=STRATEGY_NAMES))
    max_depth: int | None = field(default=None, metadata=_cli(
        "--max-depth", "take no transition beyond depth N (default: no bound)", "whole>=0", "N"))
    jobs: int = field(default=1, metadata=_cli(
        "--jobs", "snapshot processes forking at the same time (default 1)", "whole>=1", "N"))
    deadlock: bool = field(default=True, metadata=_cli(
        "--no-deadlock", "do not report states where no actor can move as violations", switch=False))
    seed: int = field(default=0, metadata=_cli("--seed", "seed of the random strategy (default 0)", "int", "N"))
    fingerprint: str = field(default="state", metadata=_cli(
        "--fingerprint", "how revisited states are recognised (default: state)", choices=FINGERPRINT_NAMES))
    stop_on_violation: bool = field(default=True, metadata=_cli(
        "--keep-going", "do not stop at the first violation: explore the whole graph, so that every property "
        "violated gets its counterexample and liveness properties are judged too", switch=False))
    walks: int = field(default=100, metadata=_cli(
        "--walks", "random walks of the random strategy (default 100)", "whole>=1", "N"))
    max_states: int | None = field(default=None, metadata=_cli(
        "--max-states", "stop after N distinct states (the result is then incomplete)", "whole>=1", "N"))
    transition_timeout: float = field(default=30.0, metadata=_cli(
        "--transition-timeout", "a transition taking longer is a timeout violation (default 30)", "seconds",
        "SECONDS"))
    time_limit: float | None = field(default=None, metadata=_cli(
        "--time-limit", "stop after this many seconds (the result is then incomplete)", "seconds", "SECONDS"))
    progress: Callable[[dict], None] | None = field(default=None, metadata={"cli": None})  # the CLI's display
    determinism_checks: int = field(default=20, metadata=_cli(
        "--determinism-checks", "the first N states take each transition twice to catch nondeterminism "
        "(default 20; 0: off)", "whole>=0", "N"))
    fairness: str = field(default="weak", metadata=_cli(
        "--fairness", "fairness assumed for liveness properties (default: weak)", choices=FAIRNESS_NAMES))
    max_snapshots: int | None = field(default=None, metadata=_cli(
        "--max-snapshots", "the most snapshot processes alive at once, N >= 4 (default: from the machine's "
        "memory and process limits)", "whole>=4", "N"))
    snapshot: str = field(default="fork", metadata=_cli(
        "--snapshot", "how states are kept: fork (a process per state, default) or replay (every state rebuilt "
        "from the root: a reference mode)", choices=SNAPSHOT_NAMES))
    memory_limit: int | None = field(default=None, metadata=_cli(
        "--memory-limit", "address-space limit of every snapshot process: bytes, or with K, M, G (powers of "
        "1024), e.g. 2G; at least 64M (default: none)", "size", "SIZE"))
    huge_pages: bool | None = field(default=None, metadata=_cli(
        "--no-huge-pages", "keep the model's heap on 4 KiB pages (forks of a big heap are then slower)",
        switch=False))
    opaque: str = field(default="error", metadata=_cli(
        "--opaque", "a state holding an object whose contents forkcheck cannot see: error (default) or "
        "distinct (keep each such state apart from every other; a warning says so)", choices=OPAQUE_NAMES))
    reduction: str = field(default="none", metadata=_cli(
        "--reduction", "which transitions are taken: none (all, default), sleep (sleep sets: the same states, "
        "fewer transitions), por (persistent and sleep sets: fewer states); see docs/reductions.md",
        choices=REDUCTION_NAMES))
    max_deviations: int | None = field(default=None, metadata=_cli(
        "--max-deviations", "an asyncio program: the most steps away from the event loop's first-in first-out "
        "order a schedule may take (0: what stock asyncio runs; default: any order)", "whole>=0", "N"))
    symmetry: bool = field(default=True, metadata=_cli(
        "--no-symmetry", "explore every state of a model that declares fc.symmetric values, instead of one state "
        "per permutation of them (for comparison)", switch=False))
    backend: str = field(default="local", metadata=_cli(
        "--backend", "where the search runs: local (default) or ray (a Ray cluster; --ray is the short way)",
        choices=BACKEND_NAMES))
    workers: int | None = field(default=None, metadata=_cli(
        "--workers", "with --ray: explorer processes, one CPU of the cluster each (default: one per CPU)",
        "whole>=1", "N"))
    ray_address: str | None = field(default=None, metadata=_cli(
        "--ray", "explore on a Ray cluster (pip install 'forkcheck[ray]'): the one whose head is at ADDRESS "
        "(HOST:PORT, or auto for the one `ray start` runs here), or without ADDRESS a private local cluster on "
        "loopback (see docs/distributed.md)", "text?", "ADDRESS", implies=(("backend", "ray"),)))

    def __post_init__(self) -> None:
        # The messages name the keyword and what to give: tests match them, and the
        # command line shows them as they are.
        if self.strategy not in STRATEGY_NAMES:
            raise UsageError(f"strategy={self.strategy!r} is not a strategy; use one of: {', '.join(STRATEGY_NAMES)}")
        if self.fingerprint not in FINGERPRINT_NAMES:
            raise UsageError(f"fingerprint={self.fingerprint!r} is not a fingerprint; use 'state' or 'pages'")
        for name in ("max_depth", "max_states", "determinism_checks", "max_deviations"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise UsageError(f"{name}={v!r}: give a whole number >= 0, or None for no bound")
        if self.snapshot not in SNAPSHOT_NAMES:
            raise UsageError(f"snapshot={self.snapshot!r}: use 'fork' (a process per state) or 'replay' "
                             "(rebuild every state from the root)")
        m = self.max_snapshots
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m < 4):
            raise UsageError(f"max_snapshots={m!r}: give a whole number >= 4, or None for the machine's default")
        m = self.memory_limit
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m < 2 ** 26):
            raise UsageError(f"memory_limit={m!r}: give the address-space limit per snapshot in bytes, at least 64 MiB")
        for name in ("jobs", "walks"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise UsageError(f"{name}={v!r}: give a whole number >= 1")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise UsageError(f"seed={self.seed!r}: give an int")
        for name in ("transition_timeout", "time_limit"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0 or math.isnan(v)):
                raise UsageError(f"{name}={v!r}: give a number of seconds > 0")
        if self.opaque not in OPAQUE_NAMES:
            raise UsageError(f"opaque={self.opaque!r}: use 'error' (refuse a state holding an object the fingerprint "
                             "cannot see) or 'distinct' (keep each such state apart from every other)")
        if self.fairness not in FAIRNESS_NAMES:
            raise UsageError(f"fairness={self.fairness!r} is not a fairness assumption; use 'weak', 'strong' or 'none'")
        if self.determinism_checks is None:
            raise UsageError("determinism_checks=None: give a whole number >= 0 (0 turns the check off)")
        if self.transition_timeout is None:
            raise UsageError("transition_timeout=None: give a number of seconds > 0")
        if self.huge_pages is not None and not isinstance(self.huge_pages, bool):
            raise UsageError(f"huge_pages={self.huge_pages!r}: give True (the root's heap on huge pages), False, "
                             "or None")
        if self.huge_pages and self.fingerprint == "pages":
            raise UsageError("huge_pages=True cannot be combined with fingerprint='pages': page fingerprints read "
                             "4 KiB pages; drop huge_pages (pages mode turns it off) or use fingerprint='state'")
        if not isinstance(self.symmetry, bool):
            raise UsageError(f"symmetry={self.symmetry!r}: give True (states that differ by a permutation of "
                             "fc.symmetric values are one) or False (every state apart)")
        if self.reduction not in REDUCTION_NAMES:
            raise UsageError(f"reduction={self.reduction!r} is not a reduction; use one of: {', '.join(REDUCTION_NAMES)}")
        if self.reduction != "none":
            r = f"reduction={self.reduction!r}"
            if self.strategy == "random":
                raise UsageError(f"{r} cannot be combined with strategy='random': random walks take one transition "
                                 "at a time; use strategy='dfs' or 'bfs', or reduction='none'")
            if self.max_depth is not None:
                raise UsageError(f"{r} cannot be combined with max_depth={self.max_depth}: a reduction reaches states "
                                 "by other paths than the full search, so a depth bound would cut different states; "
                                 "bound the search with max_states or time_limit, or use reduction='none'")
            if self.fingerprint == "pages":
                raise UsageError(f"{r} cannot be combined with fingerprint='pages': it needs the state fingerprint to "
                                 "tell that steps taken in either order meet; use fingerprint='state', or reduction='none'")
        if self.progress is not None and not callable(self.progress):
            raise UsageError(f"progress={self.progress!r}: give a callable taking a dict of counts, or None")
        self._check_backend()

    def _check_backend(self) -> None:
        if self.backend not in BACKEND_NAMES:
            raise UsageError(f"backend={self.backend!r} is not a backend; use 'local' (this machine) or 'ray' "
                             "(a Ray cluster, see docs/distributed.md)")
        w = self.workers
        if w is not None and (not isinstance(w, int) or isinstance(w, bool) or w < 1):
            raise UsageError(f"workers={w!r}: give a whole number >= 1, or None for one per CPU of the cluster")
        if self.ray_address is not None and (not isinstance(self.ray_address, str) or not self.ray_address.strip()):
            raise UsageError(f"ray_address={self.ray_address!r}: give 'HOST:PORT' of the cluster's head, 'auto', "
                             "or None to start a local cluster")
        if self.backend == "local":
            for name in ("workers", "ray_address"):
                if getattr(self, name) is not None:
                    raise UsageError(f"{name}={getattr(self, name)!r} needs backend='ray' (--ray on the command "
                                     "line); on one machine, jobs=N forks N transitions at a time")
            return
        # What the distributed search does not do (yet): each a one-line refusal naming what to use.
        refused = {
            "strategy": (self.strategy == "random", "random walks run on one machine: use backend='local'"),
            "max_depth": (self.max_depth is not None, "a depth bound needs every state's shortest depth while the "
                          "search runs: use backend='local', or time_limit"),
            "max_states": (self.max_states is not None, "a state budget is not counted across workers: use "
                           "time_limit, or backend='local'"),
            "fingerprint": (self.fingerprint == "pages", "page fingerprints depend on each worker's own "
                            "calibration: use fingerprint='state'"),
            "snapshot": (self.snapshot == "replay", "the reference mode runs on one machine: use backend='local'"),
            "reduction": (self.reduction != "none", "the workers take every transition (sleep and persistent sets "
                          "are not shared across workers): use reduction='none', or backend='local'"),
            "max_deviations": (self.max_deviations is not None, "asyncio programs run on one machine: use "
                               "backend='local'"),
        }
        for name, (bad, why) in refused.items():
            if bad:
                raise UsageError(f"{name}={getattr(self, name)!r} is not supported with backend='ray': {why}")

    @property
    def uses_huge_pages(self) -> bool:
        """Whether the snapshots' heap goes on huge pages: ``huge_pages``, or when None, unless pages mode.

        Examples
        --------
        >>> from forkcheck._check.options import CheckOptions
        >>> CheckOptions().uses_huge_pages, CheckOptions(fingerprint="pages").uses_huge_pages
        (True, False)
        """
        return self.fingerprint != "pages" if self.huge_pages is None else self.huge_pages

    @classmethod
    def parse(cls, options: CheckOptions | None = None, /, **kw: Any) -> CheckOptions:
        """Build from keywords, over ``options`` when given: the keywords replace its fields.

        Parameters
        ----------
        options : CheckOptions, optional
            A prepared object; the keywords replace its fields.
        **kw
            Options by name.

        Returns
        -------
        CheckOptions

        Raises
        ------
        UsageError
            For an unknown keyword (the message lists the options) or a bad value.

        Examples
        --------
        >>> from forkcheck._check.options import CheckOptions
        >>> CheckOptions.parse(CheckOptions(strategy="bfs"), max_depth=3).max_depth
        3
        >>> import forkcheck as fc
        >>> try:
        ...     CheckOptions.parse(colour="red")
        ... except fc.UsageError as e:
        ...     print(e)  # doctest: +ELLIPSIS
        check() got unknown option 'colour'; the options are: backend, ..., workers
        """
        _refuse_unknown("check()", kw)
        if options is None:
            return cls(**kw)
        if not isinstance(options, CheckOptions):
            raise UsageError(f"options={options!r}: give a forkcheck.CheckOptions (or the options as keywords)")
        return dataclasses.replace(options, **kw) if kw else options


#: The options by name, in declaration order.
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CheckOptions))


def _refuse_unknown(who: str, kw: dict[str, Any]) -> None:
    unknown = sorted(set(kw) - set(OPTION_NAMES))
    if unknown:
        raise UsageError(f"{who} got unknown option {unknown[0]!r}; the options are: {', '.join(sorted(OPTION_NAMES))}")


def _friendly_init(cls: type[CheckOptions]) -> None:
    """Make ``CheckOptions(colour=...)`` and positional arguments one-line UsageErrors, not TypeErrors.

    The dataclass's own ``__init__`` stays underneath (``functools.wraps``: its
    signature is what ``inspect.signature`` and ``help()`` show); type checkers
    read the class body, so they still flag a wrong keyword.
    """
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: CheckOptions, *args: Any, **kw: Any) -> None:
        if args:
            raise UsageError(f"CheckOptions takes its options as keywords, not positions: "
                             f"CheckOptions(strategy='bfs', ...); got {len(args)} positional argument(s)")
        _refuse_unknown("CheckOptions()", kw)
        init(self, **kw)

    setattr(cls, "__init__", __init__)


_friendly_init(CheckOptions)
