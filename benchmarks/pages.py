"""Page fingerprints against the default state fingerprint: precision, soundness, cost, memory.

For each example, a breadth-first search to a depth bound identifies states by
page fingerprint (forkcheck/_pages.py) while keeping each snapshot's state
fingerprint next to it, and ``check(strategy="bfs")`` explores the same bound
with the default fingerprint.  Printed per example:

* states found by each (pages mode cannot finish the cyclic examples without a
  bound: no two snapshots reached by different paths have the same memory);
* clashes: page fingerprints shared by snapshots with different state
  fingerprints (must be 0);
* cost: pages read from /proc/PID/mem and pagemap entries per transition, and
  milliseconds per fingerprint;
* memory: peak live snapshots, their private and logical bytes, sharing.

Then, on a sample, the pages whose kept hash differs from their contents (the
parent's request handler wrote them before the fork), with and without frame
numbers.

    python benchmarks/pages.py            # the numbers in docs/pages.md
    python benchmarks/pages.py --quick    # smaller bounds
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "examples"), os.path.join(HERE, "..")]

import trio  # noqa: E402

from dining_philosophers import philosophers  # noqa: E402
from forkcheck._check.memory import MemoryTracker  # noqa: E402
from forkcheck._model import as_model  # noqa: E402
from forkcheck._check.pages import PageFingerprinter  # noqa: E402
from forkcheck._check.snapshots import SnapshotTree  # noqa: E402
from mutex import broken, peterson  # noqa: E402
from two_phase import two_phase  # noqa: E402


async def explore_pages(model, max_depth: int, **options) -> dict:
    """BFS to ``max_depth`` by page fingerprint, expanding as ``check()`` does."""
    tree = SnapshotTree(as_model(model), huge_pages=False)
    pages = PageFingerprinter(**options)
    memory = MemoryTracker()
    start = time.perf_counter()
    try:
        root = await tree.start()
        await pages.calibrate(tree, root)
        owner = {await pages.fingerprint(root, None): root.report.fingerprint}
        states = {root.report.fingerprint}
        clashes = transitions = 0
        frontier = [(root, 0)]
        while frontier:
            deeper = []
            for snap, depth in frontier:
                for i in range(len(snap.report.transitions)):
                    child = await tree.step(snap, i)
                    key = await pages.fingerprint(child, snap)
                    memory.observe(tree.live)
                    transitions += 1
                    rep = child.report
                    states.add(rep.fingerprint)
                    if key in owner:
                        clashes += owner[key] != rep.fingerprint
                        tree.release(child)
                        pages.forget(child)
                        continue
                    owner[key] = rep.fingerprint
                    if rep.transitions and not rep.violations and depth + 1 < max_depth:
                        deeper.append((child, depth + 1))
                    else:
                        tree.release(child)
                        pages.forget(child)
                if snap is not root:
                    tree.release(snap)
                    pages.forget(snap)
            frontier = deeper
        seconds = time.perf_counter() - start
        return {"page_states": len(owner), "states": len(states), "transitions": transitions, "clashes": clashes,
                "seconds": seconds, "stats": pages.stats, "frames": pages.use_frames,
                "memory": memory.stats(tree.peak)}
    finally:
        tree.close()


async def explore_state(model, max_depth: int) -> dict:
    """The same search by state fingerprint, with the memory tracker (what check() does, plus memory)."""
    tree = SnapshotTree(as_model(model), huge_pages=False)
    memory = MemoryTracker()
    start = time.perf_counter()
    try:
        root = await tree.start()
        seen = {root.report.fingerprint}
        transitions = 0
        frontier = [(root, 0)]
        while frontier:
            deeper = []
            for snap, depth in frontier:
                for i in range(len(snap.report.transitions)):
                    child = await tree.step(snap, i)
                    memory.observe(tree.live)
                    transitions += 1
                    rep = child.report
                    if rep.fingerprint in seen:
                        tree.release(child)
                        continue
                    seen.add(rep.fingerprint)
                    if rep.transitions and not rep.violations and depth + 1 < max_depth:
                        deeper.append((child, depth + 1))
                    else:
                        tree.release(child)
                if snap is not root:
                    tree.release(snap)
            frontier = deeper
        return {"states": len(seen), "transitions": transitions, "seconds": time.perf_counter() - start,
                "memory": memory.stats(tree.peak)}
    finally:
        tree.close()


async def stale_sample(model, use_frames, levels: int = 2) -> tuple[int, Counter, int]:
    """Children fingerprinted with verification: (children, mismatching pages by mapping, of which exclusive)."""
    tree = SnapshotTree(as_model(model), huge_pages=False)
    pages = PageFingerprinter(0, use_frames=use_frames, verify=True)
    try:
        root = await tree.start()
        await pages.calibrate(tree, root)
        await pages.fingerprint(root, None)
        level = [root]
        for _ in range(levels):
            nxt = []
            for snap in level:
                for i in range(len(snap.report.transitions)):
                    child = await tree.step(snap, i)
                    await pages.fingerprint(child, snap)
                    nxt.append(child)
            level = nxt
        where = Counter(os.path.basename(m[2]) or "[anon]" for m in pages.stats.mismatches)
        return pages.stats.fingerprints, where, sum(1 for m in pages.stats.mismatches if m[3])
    finally:
        tree.close()


def mib(n) -> str:
    return "-" if n is None else f"{n / (1 << 20):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller depth bounds")
    args = ap.parse_args()
    cases = [
        ("two_phase(n=2)", two_phase(n=2), 4),
        ("philosophers(n=3)", philosophers(n=3), 4),
        ("mutex.broken", broken(), 6),
        ("mutex.peterson", peterson(), 6),
    ]
    if args.quick:
        cases = [(name, model, depth - 1) for name, model, depth in cases]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    print()
    print("Precision and soundness (BFS to the depth bound; pages with noise='static')")
    head = (f"{'model':<19}{'depth':>6}{'state fp':>9}{'pages fp':>9}{'trans':>7}{'clash':>6}"
            f"{'pages/tr':>9}{'pmap/tr':>9}{'ms/fp':>7}{'ms/tr st':>9}{'ms/tr pg':>9}")
    print(head)
    rows = []
    for name, model, depth in cases:
        st = trio.run(explore_state, model, depth)
        pg = trio.run(lambda: explore_pages(model, depth))
        s = pg["stats"]
        rows.append((name, st, pg))
        print(f"{name:<19}{depth:>6}{st['states']:>9}{pg['page_states']:>9}{pg['transitions']:>7}{pg['clashes']:>6}"
              f"{s.pages_per_fingerprint:>9.0f}{s.entries / max(1, s.fingerprints):>9.0f}"
              f"{1e3 * s.seconds / max(1, s.fingerprints + s.full_reads):>7.1f}"
              f"{1e3 * st['seconds'] / max(1, st['transitions']):>9.1f}"
              f"{1e3 * pg['seconds'] / max(1, pg['transitions']):>9.1f}")
        assert pg["states"] == st["states"], (pg["states"], st["states"])
    print()
    print("Noise masks (calibration: 2 root transitions taken twice)")
    for noise in ("static", "all"):
        pg = trio.run(lambda: explore_pages(two_phase(n=2), 3, noise=noise))
        s = pg["stats"]
        print(f"  noise={noise!r:<9} masked {s.masked_words:>5} words on {s.masked_pages:>4} pages; "
              f"two_phase(n=2) depth 3: {pg['page_states']} page states for {pg['states']} states, "
              f"clashes {pg['clashes']}; root read: {s.full_pages_read} pages")
    print()
    print("Memory at the peak of live snapshots (MemoryTracker, both fingerprints)")
    print(f"{'model':<19}{'mode':>7}{'peak':>6}{'sampled':>8}{'private MiB':>13}{'logical MiB':>13}{'sharing':>9}"
          f"{'KiB/snap':>10}")
    for name, st, pg in rows:
        for mode, r in (("state", st), ("pages", pg)):
            m = r["memory"]
            per = "-" if m.private_per_snapshot is None else f"{m.private_per_snapshot / 1024:.0f}"
            share = "-" if m.sharing is None else f"{m.sharing:.1%}"
            print(f"{name:<19}{mode:>7}{m.peak_snapshots:>6}{m.sampled_snapshots:>8}{mib(m.private_bytes):>13}"
                  f"{mib(m.logical_bytes):>13}{share:>9}{per:>10}")
    print()
    print("Kept hashes that differ from the page (parent's request handler), two_phase(n=2), 2 levels")
    for label, frames in (("frame numbers", None), ("exclusive bit only", False)):
        n, where, exclusive = trio.run(stale_sample, two_phase(n=2), frames)
        total = sum(where.values())
        print(f"  {label:<19} {total / max(1, n):.1f} pages per child over {n} children "
              f"({', '.join(f'{k} {v}' for k, v in where.most_common())}); written by the child: {exclusive}")


if __name__ == "__main__":
    main()
