"""Memory accounting: how much the live snapshot processes really cost.

Every state is a stopped, forked process, so a check holds many processes
whose pages are mostly shared copy-on-write.  Two numbers describe that:

* *logical* bytes: what full, independent copies would take (the sum of the
  processes' resident set sizes);
* *private* bytes: what they actually own (pages mapped by one process only,
  ``Private_Clean + Private_Dirty`` of ``/proc/PID/smaps_rollup``).

``sharing = 1 - private / logical`` is the fraction that copy-on-write saves.

Reading ``smaps_rollup`` makes the kernel walk every page table of the process
(about 1 ms for a snapshot of a 40 MiB interpreter on the reference machine),
so :class:`MemoryTracker` samples only when the number of live snapshots
reaches a new peak that is at least 10 % above the last sample (one more while
few), and reads ``smaps_rollup`` for at most ``sample_limit`` processes per
sample (an evenly spaced subset beyond that; the resident sizes of all of them
come from the cheap ``/proc/PID/statm``).  Page tables of big heaps make each
read slower, so sampling also keeps to a time
budget: a due sample waits while sampling has taken more than ``budget`` of
the time since the first one, unless the live count has doubled since the last
sample.  See docs/pages.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from .._results import MemoryStats

_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class MemorySample:
    """Memory of a set of processes at one moment.

    Attributes
    ----------
    private_bytes : int
        Sum of ``Private_Clean + Private_Dirty`` (pages mapped by that process
        only); extrapolated from a subset when ``measured < processes``.
    logical_bytes : int
        Sum of the resident set sizes: what full copies would take.
    processes : int
        Processes that were alive when sampled.
    measured : int
        Processes whose ``smaps_rollup`` was read.
    """

    private_bytes: int
    logical_bytes: int
    processes: int = 0
    measured: int = 0

    @property
    def sharing(self) -> float | None:
        """``1 - private / logical``: the fraction of the logical size that is shared."""
        if self.logical_bytes <= 0:
            return None
        return 1.0 - self.private_bytes / self.logical_bytes


def _rollup(pid: int) -> tuple[int, int] | None:
    """``(private, rss)`` bytes of one process from smaps_rollup; None if it has gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    private = rss = 0
    for line in text.splitlines():
        if line.startswith((b"Private_Clean:", b"Private_Dirty:")):
            private += int(line.split()[1]) * 1024
        elif line.startswith(b"Rss:"):
            rss = int(line.split()[1]) * 1024
    if rss == 0 and not text:  # a zombie has an empty rollup
        return None
    return private, rss


def _resident(pid: int) -> int | None:
    """Resident bytes of one process from /proc/PID/statm (cheap: no page walk)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            fields = f.read().split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return int(fields[1]) * _PAGE if len(fields) > 1 else None


def sample(pids: Iterable[int], limit: int | None = None) -> MemorySample:
    """Measure the private and logical memory of ``pids``.

    Parameters
    ----------
    pids : iterable of int
        Processes to measure; those that have exited are left out.
    limit : int, optional
        Read ``smaps_rollup`` for at most this many processes, evenly spaced
        over the sorted pids, and scale their private bytes to all of them.
        None reads every one (exact, about 1 ms per process).

    Returns
    -------
    MemorySample
    """
    pids = sorted({p for p in pids if p > 0})
    if limit is None or len(pids) <= limit:
        private = logical = count = 0
        for pid in pids:
            rollup = _rollup(pid)
            if rollup is None:
                continue
            count += 1
            private += rollup[0]
            logical += rollup[1]
        return MemorySample(private, logical, count, count)
    # Resident sizes are cheap: take them all.  Private bytes come from an evenly
    # spaced subset (deterministic, so repeated runs sample the same way).
    resident = {pid: r for pid in pids if (r := _resident(pid)) is not None}
    alive = sorted(resident)
    if not alive:
        return MemorySample(0, 0, 0, 0)
    step = len(alive) / limit
    chosen = sorted({alive[int(i * step)] for i in range(limit)})
    got = [(pid, ru) for pid in chosen if (ru := _rollup(pid)) is not None]
    if not got:
        return MemorySample(0, sum(resident.values()), len(alive), 0)
    # Scale by resident size rather than by count: a subset that happens to hold
    # the big root process must not inflate every other process.
    priv = sum(r[0] for _, r in got)
    rss = sum(r[1] for _, r in got)
    logical = sum(resident.values())
    private = round(priv * logical / rss) if rss else 0
    return MemorySample(private, logical, len(alive), len(got))


class MemoryTracker:
    """Record the memory of the live snapshots when their number peaks.

    Call :meth:`observe` whenever snapshots may have been added (after every
    fork is enough); it samples only when the live count reaches a new peak at
    least ``growth`` above the last sampled one (one more while the count is
    below ``small``), so the total cost stays proportional to the peak.

    Parameters
    ----------
    growth : float
        Relative growth of the live count that triggers a new sample.
    small : int
        Below this many live snapshots every new peak is sampled.
    sample_limit : int, optional
        Passed to :func:`sample`: at most this many ``smaps_rollup`` reads per
        sample.  None measures every process exactly.
    budget : float, optional
        Largest fraction of the elapsed time that sampling may take; a due
        sample is postponed beyond it unless the live count has doubled.
        None: no budget.

    Examples
    --------
    >>> t = MemoryTracker()
    >>> t.observe([os.getpid()])
    True
    >>> m = t.stats()
    >>> m.peak_snapshots, m.logical_bytes > 0, 0.0 <= m.sharing <= 1.0
    (1, True, True)
    """

    def __init__(self, growth: float = 0.10, small: int = 10, sample_limit: int | None = 64,
                 budget: float | None = 0.05) -> None:
        self.growth = growth
        self.small = small
        self.sample_limit = sample_limit
        self.budget = budget
        self.started: float | None = None  # time of the first sample
        self.peak = 0  # largest live count seen
        self.sampled_at = 0  # live count of the kept sample
        self.last: MemorySample | None = None
        self.samples = 0
        self.seconds = 0.0  # time spent sampling, to keep the overhead visible

    def _due(self, n: int) -> bool:
        if n <= self.sampled_at:
            return False
        if n >= 2 * self.sampled_at:
            return True
        if self.budget is not None and self.started is not None \
                and self.seconds > self.budget * (time.perf_counter() - self.started):
            return False
        if n < self.small:
            return True
        return n >= self.sampled_at * (1.0 + self.growth)

    def observe(self, live: Collection) -> bool:
        """Note the live snapshots (Snapshot objects or pids); True if a sample was taken."""
        n = len(live)
        if n > self.peak:
            self.peak = n
        if not self._due(n):
            return False
        start = time.perf_counter()
        if self.started is None:
            self.started = start
        pids = [x if isinstance(x, int) else x.pid for x in live]
        got = sample(pids, self.sample_limit)
        self.seconds += time.perf_counter() - start
        self.samples += 1
        if got.processes == 0:
            return False
        self.last = got
        self.sampled_at = n
        return True

    def stats(self, peak_snapshots: int | None = None) -> MemoryStats:
        """The :class:`~forkcheck.MemoryStats` of the check so far.

        ``peak_snapshots`` defaults to the largest live count observed; the
        memory figures are those of the last sample, taken at a live count at
        most ``growth`` below that peak.
        """
        peak = self.peak if peak_snapshots is None else peak_snapshots
        s = self.last
        if s is None:
            return MemoryStats(peak_snapshots=peak)
        return MemoryStats(
            peak_snapshots=peak,
            private_bytes=s.private_bytes,
            logical_bytes=s.logical_bytes,
            sharing=s.sharing,
            private_per_snapshot=s.private_bytes // s.processes if s.processes else None,
            sampled_snapshots=s.processes,
        )
