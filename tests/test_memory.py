"""Memory accounting (forkcheck/_memory.py) on real snapshot processes."""

from __future__ import annotations

import os
import time

import pytest
import trio

from forkcheck._check.memory import MemorySample, MemoryTracker, sample
from forkcheck._model import as_model
from forkcheck._check.pages import PageFingerprinter
from forkcheck._results import MemoryStats
from forkcheck._check.snapshots import SnapshotTree
from two_phase import two_phase


def test_sample_of_one_process():
    s = sample([os.getpid()])
    assert s.processes == s.measured == 1
    assert 0 < s.private_bytes <= s.logical_bytes
    assert 0.0 <= s.sharing < 1.0


def test_processes_that_have_exited_are_left_out():
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child exits at once
        os._exit(0)
    os.waitpid(pid, 0)
    s = sample([pid, os.getpid()])
    assert s.processes == 1
    assert sample([pid]) == MemorySample(0, 0, 0, 0)
    assert sample([pid]).sharing is None


def test_tracker_samples_only_at_new_peaks_that_grew_enough(monkeypatch):
    calls = []

    def fake(pids, limit=None):
        calls.append(len(pids))
        return MemorySample(len(pids) * 10, len(pids) * 100, len(pids), len(pids))

    monkeypatch.setattr("forkcheck._check.memory.sample", fake)
    t = MemoryTracker(growth=0.10, small=10, budget=None)
    counts = list(range(1, 201)) + list(range(200, 50, -1)) + list(range(50, 150))
    for n in counts:
        t.observe(range(1, n + 1))
    # Every count up to 10, then each time 10 % above the last sample; nothing on the way down.
    expected, last = [], 0
    for n in range(1, 201):
        if n > last and (n < 10 or n >= last * 1.1):
            expected.append(n)
            last = n
    assert calls == expected
    assert len(calls) < 40
    m = t.stats()
    assert m.peak_snapshots == 200
    assert (m.private_bytes, m.logical_bytes) == (calls[-1] * 10, calls[-1] * 100)
    assert m.sharing == pytest.approx(0.9)
    assert m.private_per_snapshot == 10


def test_a_slow_sample_waits_for_the_budget_unless_the_count_doubled(monkeypatch):
    calls = []

    def slow(pids, limit=None):
        calls.append(len(pids))
        time.sleep(0.01)  # the observations in between take microseconds: far beyond a 5 % budget
        return MemorySample(len(pids) * 10, len(pids) * 100, len(pids), len(pids))

    monkeypatch.setattr("forkcheck._check.memory.sample", slow)
    t = MemoryTracker(budget=0.05)
    for n in range(1, 201):
        t.observe(range(1, n + 1))
    assert calls == [1, 2, 4, 8, 16, 32, 64, 128]
    m = t.stats()
    assert (m.peak_snapshots, m.sampled_snapshots) == (200, 128)


def test_stats_before_any_sample():
    assert MemoryTracker().stats(peak_snapshots=3) == MemoryStats(peak_snapshots=3)


async def _bfs(model, depth, tracker, pages=None):
    """A breadth-first search that lets ``tracker`` observe the live snapshots after every fork."""
    tree = SnapshotTree(as_model(model), huge_pages=pages is None)  # pages mode runs on 4 KiB pages
    try:
        root = await tree.start()
        if pages is not None:
            await pages.calibrate(tree, root)
            await pages.fingerprint(root, None)
        seen = {root.report.fingerprint}
        frontier = [root]
        for _ in range(depth):
            deeper = []
            for snap in frontier:
                for i in range(len(snap.report.transitions)):
                    child = await tree.step(snap, i)
                    if pages is not None:
                        await pages.fingerprint(child, snap)
                    tracker.observe(tree.live)
                    if child.report.fingerprint in seen:
                        tree.release(child)
                    else:
                        seen.add(child.report.fingerprint)
                        deeper.append(child)
                if snap is not tree.root:
                    tree.release(snap)
            frontier = deeper
        return tree.peak
    finally:
        tree.close()


@pytest.mark.parametrize("fingerprint", ["state", "pages"])
def test_snapshots_share_most_of_their_memory(fingerprint):
    tracker = MemoryTracker(sample_limit=None, budget=None)
    pages = PageFingerprinter(0) if fingerprint == "pages" else None
    peak = trio.run(_bfs, two_phase(n=2), 3, tracker, pages)
    m = tracker.stats(peak_snapshots=peak)
    assert m.peak_snapshots == peak >= 10
    assert m.private_bytes < m.logical_bytes
    # Full copies of a 40 MiB interpreter per state against a few hundred KiB each.
    assert m.sharing > 0.8, m
    assert m.private_per_snapshot < 4 << 20, m
    assert tracker.sampled_at >= peak / 1.1


def test_a_subset_estimates_the_private_bytes():
    """Above ``sample_limit`` processes the private bytes are scaled from an evenly spaced subset."""

    async def main():
        tree = SnapshotTree(as_model(two_phase(n=2)))
        try:
            root = await tree.start()
            kids = [await tree.step(root, i) for i in range(len(root.report.transitions))]
            for k in kids:
                for _ in range(3):
                    if k.report.transitions:
                        await tree.step(k, 0)
            pids = [s.pid for s in tree.live]
            return sample(pids), sample(pids, limit=6), len(pids)
        finally:
            tree.close()

    exact, estimate, n = trio.run(main)
    assert exact.processes == exact.measured == n
    assert estimate.processes == n and estimate.measured == 6
    assert estimate.logical_bytes == pytest.approx(exact.logical_bytes, rel=0.02)
    assert estimate.private_bytes == pytest.approx(exact.private_bytes, rel=0.5)
