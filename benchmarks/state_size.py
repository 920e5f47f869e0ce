"""Per-transition cost against the size of the state, next to the fork floor.

A model whose actors bump small counters while the state also holds data that
no transition touches: ``bytearray(1000)`` buffers, or a dict of ``str``.  The
data is reachable from an invariant's closure, so it is state and the
fingerprint must cover it.  DFS, ``determinism_checks=0``; setup (building the
data in the root) is excluded, as ``forkcheck bench`` excludes it
(``stats.setup_seconds``).  Variants: every transition also allocates and drops
300 small objects and a 1000-byte buffer ("churn"), or rewrites one entry of
the dict ("rewrite").

    python benchmarks/state_size.py                  # the table of docs/benchmarks.md
    python benchmarks/state_size.py bytes:256 dict:200000:rewrite   # chosen rows

The floor is the Python fork round trip of a process holding 16 MiB of small
objects (``forkcheck._bench.py_fork_floor``), measured before and after the
rows.  The figures are in docs/benchmarks.md, "The size of the state".
"""

from __future__ import annotations

import os
import platform
import sys

import forkcheck as fc
from forkcheck._bench import py_fork_floor


@fc.model
def counters(kind="bytes", size=1, steps=3, actors=3, churn=False, rewrite=False):
    """``actors`` actors each bump their own counter ``steps`` times; the state also holds
    ``size`` MiB of ``bytearray(1000)`` (kind "bytes") or a dict of ``size`` str entries
    (kind "dict").  (steps+1)**actors states."""
    if kind == "bytes":
        data = [bytearray(1000) for _ in range(size * 1024)]
    else:
        data = {f"key{i}": f"value{i}" for i in range(size)}
    count = [0] * actors

    def bump(i):
        count[i] += 1
        if churn:
            junk = [object() for _ in range(300)]
            junk.append(bytearray(1000))
        if rewrite:
            data[f"key{(i * 7919) % size}"] = f"value{count[i]}-{i}"

    async def actor(i):
        for _ in range(steps):
            await fc.checkpoint()
            bump(i)

    for i in range(actors):
        fc.spawn(actor, i, name=f"a{i}")
    fc.invariant(lambda: len(data) >= 0 and count[0] >= 0)
    return count


def per_transition(kind: str, size: int, churn: bool, rewrite: bool) -> tuple[float, int, int]:
    """Seconds per transition (DFS), the root's setup excluded (``stats.setup_seconds``)."""
    r = counters(kind=kind, size=size, churn=churn, rewrite=rewrite).check(strategy="dfs", determinism_checks=0)
    s = r.stats
    return (s.seconds - s.setup_seconds) / s.transitions, s.states, s.transitions


ROWS = ["bytes:1", "bytes:16", "bytes:64", "bytes:256", "bytes:1:churn", "bytes:256:churn", "dict:100",
        "dict:100000", "dict:200:rewrite", "dict:200000:rewrite"]


def main(argv: list[str]) -> None:
    print(f"Python {platform.python_version()}, Linux {platform.release()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    floor_before = py_fork_floor(16, 300)
    print(f"floor before: Python fork round trip of a 16 MiB process {floor_before * 1e3:.2f} ms")
    print(f"{'state besides the counters':<44}{'states':>7}{'trans':>7}{'ms/transition':>15}")
    for row in argv or ROWS:
        kind, size, *flags = row.split(":")
        per, states, trans = per_transition(kind, int(size), "churn" in flags, "rewrite" in flags)
        what = f"{size} MiB of bytearray(1000)" if kind == "bytes" else f"a dict of {int(size):,} str entries"
        if flags:
            what += ", " + {"churn": "churn", "rewrite": "one rewritten"}[flags[0]]
        print(f"{what:<44}{states:>7}{trans:>7}{per * 1e3:>15.2f}")
    floor_after = py_fork_floor(16, 300)
    print(f"floor after: {floor_after * 1e3:.2f} ms; mean {(floor_before + floor_after) / 2e-3:.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
