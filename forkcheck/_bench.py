"""``forkcheck bench``: measured figures for docs/benchmarks.md.

Comparisons, each printed as a table and written to ``bench.json`` (and
PNG plots when matplotlib is installed, the ``bench`` extra):

0. ``transitions``: two_phase(n=3), DFS, seconds per transition with ``jobs``
   1 and 2, as a multiple of the fork round trip through a node process
   (:func:`node_fork_floor`, measured before and after; ``--only transitions``
   runs this section alone);
1. ``snapshots``: one model, a read-only heap of 1/64/512 MiB of small bytes
   objects and paths 10/50 deep, explored by forkcheck with fork snapshots,
   with ``snapshot="replay"``, and by a small copy-based explorer (the way
   pure-Python checkers keep states) that copies the whole state per state
   with ``copy.deepcopy`` or with ``pickle``; then (``busy``) the same model
   on 1 MiB with about 1 ms of Python per transition, fork against replay;
2. ``floor``: the raw fork + pipe + exit + wait round trip of a process
   holding the same heap, in Python and in C;
3. ``scaling``: ``jobs`` = 1 .. cpu_count on two_phase(n=3);
4. ``spin``: the same models in Promela (benchmarks/spin/), state counts and
   times next to forkcheck's.

Timings on a shared machine are noisy: every table carries the floor measured
in the same run and the load average.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import forkcheck as fc

ROOT = Path(__file__).resolve().parent.parent
OBJ_PAYLOAD = 31  # bytes objects of 31 bytes: sys.getsizeof == 64, one 64-byte pymalloc block each
OBJ_SIZE = 64


def heap_objects(mib: int) -> int:
    """How many small objects make a heap of ``mib`` MiB (64 bytes each, plus an 8-byte list slot)."""
    return mib * 2 ** 20 // (OBJ_SIZE + 8)


def build_heap(mib: int) -> list[bytes]:
    """A read-only heap of many small, distinct bytes objects."""
    pad = b"h" * (OBJ_PAYLOAD - 8)
    return [i.to_bytes(8, "little") + pad for i in range(heap_objects(mib))]


class Heap:
    """Holds the big heap.  Its fingerprint is a constant: the heap never changes,
    and without ``__fc_state__`` the state fingerprint would walk every object of it
    in every state (it is reachable from the model's globals)."""

    def __init__(self, mib: int) -> None:
        self.mib = mib
        self.objects = build_heap(mib)

    def __fc_state__(self) -> Any:
        return ("heap", self.mib)


HEAP: Heap | None = None  # a global, so the heap is part of every state


#: Iterations of :func:`busy` that take about 1 ms of Python on this machine (the bench prints the time).
BUSY_MS = 12_000


def busy(n: int, seed: int) -> int:
    """``n`` iterations of plain Python arithmetic: a transition that does real work, deterministically."""
    x = seed
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def busy_seconds(samples: int = 50) -> float:
    """Median seconds of ``busy(BUSY_MS, ...)`` in this process."""
    times = []
    for k in range(samples):
        t = time.perf_counter()
        busy(BUSY_MS, k)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@fc.model
def lattice(mib=1, depth=10, work=0):
    """One actor takes ``depth`` binary choices and remembers the last one: 2*depth+1 states,
    4*depth-2 transitions, paths ``depth`` deep; every state holds the heap.

    ``work``: each transition also runs ``busy(work, ...)`` (``BUSY_MS`` is about 1 ms) and keeps
    its result, a function of the step and the choice, so the graph stays the same."""
    global HEAP
    HEAP = Heap(mib)
    state = {"step": 0, "bit": 0, "acc": 0}

    def apply(x):
        state["step"] += 1
        state["bit"] = x
        if work:
            state["acc"] = busy(work, 2 * state["step"] + x)

    async def walker():
        while state["step"] < depth:
            apply(await fc.choose((0, 1)))

    fc.spawn(walker, name="walker")
    return state


def lattice_counts(depth: int) -> tuple[int, int]:
    return 2 * depth + 1, 4 * depth - 2


# --------------------------------------------------------------------------- copy-based baseline

def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def copy_explore(mib: int, depth: int, method: str, budget: float) -> dict:
    """The same lattice, explored the way pure-Python checkers do: the state is plain data
    (a dict holding the counter and the heap), every successor is a full copy of its parent
    (``copy.deepcopy``, or ``pickle`` for storage and unpickle to expand), DFS with a seen set.
    The seen set keys on (step, bit) only, as forkcheck's fingerprint skips the heap.
    Stops after ``budget`` seconds (``complete`` False)."""
    t0 = time.perf_counter()
    root = {"step": 0, "bit": 0, "heap": build_heap(mib)}
    setup = time.perf_counter() - t0
    rss0 = _rss("VmRSS")
    start = time.perf_counter()
    seen = {(0, 0)}
    # deepcopy: the stack holds states, each successor is a deepcopy of its parent;
    # pickle: the stack holds pickled states, each successor is an unpickled copy.
    stack: list[tuple[int, Any]] = [(0, root if method == "deepcopy" else pickle.dumps(root, protocol=pickle.HIGHEST_PROTOCOL))]
    del root
    transitions = 0
    complete = True
    while stack:
        if time.perf_counter() - start > budget:
            complete = False
            break
        step, parent = stack.pop()
        if step >= depth:  # a leaf: nothing to expand
            continue
        for x in (0, 1):
            child = copy.deepcopy(parent) if method == "deepcopy" else pickle.loads(parent)
            child["step"] += 1
            child["bit"] = x
            transitions += 1
            key = (child["step"], child["bit"])
            if key not in seen:
                seen.add(key)
                stack.append((key[0], child if method == "deepcopy" else pickle.dumps(child, protocol=pickle.HIGHEST_PROTOCOL)))
            del child
        del parent
    seconds = time.perf_counter() - start
    return {"states": len(seen), "transitions": transitions, "seconds": seconds, "setup_seconds": setup,
            "complete": complete, "peak_growth_bytes": max(0, _rss("VmHWM") - rss0),
            "stack_left": len(stack)}


@fc.model
def fan(mib=1, width=63):
    """One actor makes one choice among ``width`` values: the root has ``width`` children, each
    one small transition (a dict update) away from it; every state holds the heap."""
    global HEAP
    HEAP = Heap(mib)
    state = {"x": None}

    async def chooser():
        state["x"] = await fc.choose(range(width))

    fc.spawn(chooser, name="chooser")
    return state


# --------------------------------------------------------------------------- floors

def py_fork_floor(mib: int, samples: int, libc: bool = False, huge: bool = False) -> float:
    """Median seconds of fork + one byte through a pipe + exit + wait, with the heap allocated.

    ``libc`` forks with libc's ``fork()`` through ctypes, as snapshots do (no after-fork hooks).
    ``huge`` collapses the heap into huge pages first, as the root snapshot does (run it
    through ``_run_worker(..., root_env=True)`` so that malloc allocates on them).
    """
    heap = build_heap(mib)  # noqa: F841 - held while forking
    if huge:
        import gc

        from ._app.hugepages import collapse

        gc.collect()
        gc.freeze()
        collapse()
    fork = os.fork
    if libc:
        import ctypes

        fork = ctypes.PyDLL(None).fork
    times = []
    for _ in range(samples):
        r, w = os.pipe()
        t = time.perf_counter()
        pid = fork()
        if pid == 0:
            os.write(w, b"x")
            os._exit(0)
        os.read(r, 1)
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - t)
        os.close(r)
        os.close(w)
    return statistics.median(times)


def node_fork_floor(samples: int = 500) -> float:
    """Mean seconds of one fork round trip through a forked node process: the issue 19 floor.

    This fresh interpreter holds a 1 MiB heap (1,024 ``bytearray(1000)``) and forks a *node*
    process that keeps it, as a snapshot keeps its parent's heap.  Per round trip the
    parent writes one byte to a pipe, the node forks (``os.fork``), the child writes one
    byte back and exits (``os._exit``), and the node waits for it before reading the next byte.
    The mean of ``samples`` round trips, timed from the parent's write to its read of the
    answer (the node's ``waitpid`` overlaps the next request, as a snapshot's does).
    """
    heap = [bytearray(1000) for _ in range(1024)]  # noqa: F841 - held by the node through fork
    req_r, req_w = os.pipe()
    ans_r, ans_w = os.pipe()
    node = os.fork()
    if node == 0:  # the node: fork a child per byte read, until end of file
        os.close(req_w)
        os.close(ans_r)
        while os.read(req_r, 1):
            pid = os.fork()
            if pid == 0:
                os.write(ans_w, b"x")
                os._exit(0)
            os.waitpid(pid, 0)
        os._exit(0)
    os.close(req_r)
    os.close(ans_w)
    total = 0.0
    for _ in range(samples):
        t = time.perf_counter()
        os.write(req_w, b"x")
        os.read(ans_r, 1)
        total += time.perf_counter() - t
    os.close(req_w)
    os.waitpid(node, 0)
    os.close(ans_r)
    return total / samples


C_FLOOR = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
    long n = atol(argv[1]), size = atol(argv[2]); int samples = atoi(argv[3]);
    char **objs = malloc(n * sizeof *objs);
    for (long i = 0; i < n; i++) { objs[i] = malloc(size); memset(objs[i], (int)i, size); }
    double *t = malloc(samples * sizeof *t);
    for (int s = 0; s < samples; s++) {
        int p[2]; char c; if (pipe(p)) return 1;
        double t0 = now();
        pid_t pid = fork();
        if (pid == 0) { if (write(p[1], "x", 1) != 1) _exit(1); _exit(0); }
        if (read(p[0], &c, 1) != 1) return 1;
        waitpid(pid, NULL, 0);
        t[s] = now() - t0;
        close(p[0]); close(p[1]);
    }
    qsort(t, samples, sizeof *t, cmp);
    printf("%.9f\n", t[samples / 2]);
    return 0;
}
"""


def c_fork_floor(mib: int, samples: int, workdir: str) -> float | None:
    """The same round trip in C, with the same number of small mallocs; None without gcc."""
    exe = os.path.join(workdir, "floor")
    if not os.path.exists(exe):
        if shutil.which("gcc") is None:
            return None
        src = os.path.join(workdir, "floor.c")
        Path(src).write_text(C_FLOOR)
        subprocess.run(["gcc", "-O2", "-o", exe, src], check=True, capture_output=True)
    out = subprocess.run([exe, str(heap_objects(mib)), str(OBJ_SIZE - 16), str(samples)], check=True,
                         capture_output=True, text=True).stdout
    return float(out)


# --------------------------------------------------------------------------- pages written by a child

def _frames(pid: int, regions: list[tuple[int, int]], bufs: list[bytearray]) -> None:
    """Read the pagemap entries of ``regions`` of ``pid`` into preallocated buffers (no allocation)."""
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        for (start, _), buf in zip(regions, bufs):
            os.preadv(fd, [buf], start // 4096 * 8)
    finally:
        os.close(fd)


def written_pages_by_phase(mib: int = 1) -> dict | None:
    """Pages a snapshot of ``lattice(mib)`` writes: right after its fork, after its transition,
    after its report, and after its report computed with the Python fingerprint walk instead of
    the C walk.  A page counts when its frame differs from the parent's before the fork (frame
    numbers need CAP_SYS_ADMIN: None without them).  Runs in a fresh interpreter prepared like a
    root snapshot (``_run_worker(..., root_env=True)``)."""
    import ctypes  # noqa: F401 - loaded before the fork, as in a snapshot
    import gc
    import signal
    import struct

    from ._app import fingerprint as _fingerprint, serve as _snapshot
    from ._app.hugepages import collapse
    from ._app.runtime import World

    _snapshot._prepare_process(root=False)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this worker waits for its forks
    model = lattice(mib=mib, depth=10 ** 6)
    world = World()
    world.setup(model.fn, model.args, model.kwargs)
    _snapshot.make_report(world)
    _fingerprint.state_fingerprint(world)  # as the root does
    gc.collect()
    gc.freeze()
    collapse()
    regions, names = [], []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if fields[1].startswith("rw") and (len(fields) < 6 or fields[5] not in ("[vsyscall]", "[vvar]")):
                a, b = (int(x, 16) for x in fields[0].split("-"))
                regions.append((a, b))
                names.append(fields[5] if len(fields) > 5 else "anonymous")
    before = [bytearray((b - a) // 4096 * 8) for a, b in regions]
    after = [bytearray(len(x)) for x in before]
    page = bytearray(4096)
    pfn = (1 << 55) - 1
    python_walk = _snapshot.state_fingerprint
    out: dict[str, Any] = {"c_walk": _fingerprint.C_WALK}
    for phase in ("fork", "transition", "report", "report_python_walk"):
        _snapshot._settle_malloc()  # as a snapshot does before it waits
        _frames(os.getpid(), regions, before)
        r, w = os.pipe()
        r2, w2 = os.pipe()
        pid = _snapshot._fork()
        if pid == 0:
            if phase != "fork":
                world.execute(0)
            if phase == "report_python_walk":
                _snapshot.state_fingerprint = lambda w: python_walk(w, "python")  # type: ignore[assignment, misc]  # a stand-in for this phase
            if phase.startswith("report"):
                _snapshot.make_report(world)
            os.write(w, b"x")
            os.read(r2, 1)
            os._exit(0)
        os.read(r, 1)
        _frames(pid, regions, after)
        written, visible, same = [], 0, 0
        for (start, _), old, new in zip(regions, before, after):
            for k, ((o,), (n,)) in enumerate(zip(struct.iter_unpack("<Q", old), struct.iter_unpack("<Q", new))):
                if o & pfn:
                    visible += 1
                if n >> 63 and (not o >> 63 or (n & pfn) != (o & pfn)):
                    written.append(start + k * 4096)
        # A copied page whose contents are those of the parent's page was written back to what it
        # was: reference counts up and down, mostly.  (The parent only waits in read() meanwhile.)
        mem = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        mine = os.open("/proc/self/mem", os.O_RDONLY)
        try:
            for addr in written:
                try:
                    child = os.pread(mem, 4096, addr)
                    os.preadv(mine, [page], addr)
                except OSError:
                    continue
                same += child == page
        finally:
            os.close(mem)
            os.close(mine)
        os.write(w2, b"x")
        os.waitpid(pid, 0)
        for x in (r, w, r2, w2):
            os.close(x)
        if not visible:
            return None
        out[phase] = len(written)
        out[phase + "_unchanged"] = same
    return out


def child_memory_floor(mib: int, width: int) -> dict:
    """Private memory of a bare Python parent and ``width`` children, each of which took one request.

    No forkcheck in the children: each unpickles a request, updates a dict, sends a
    pickled reply and waits.  The parent holds a heap of ``mib`` MiB on huge pages
    and forks as snapshots do (libc's ``fork``, the root's allocator environment:
    run it through ``_run_worker(..., root_env=True)``).  What any Python process
    pays per child, next to what a snapshot pays (``fan``).
    """
    import ctypes
    import gc
    import pickle
    import signal
    import socket

    from ._app.hugepages import collapse
    from ._check.memory import sample

    heap = build_heap(mib)  # noqa: F841 - held while forking
    state = {"x": None}
    fork = ctypes.PyDLL(None).fork
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    gc.collect()
    gc.freeze()
    collapse()
    park_r, park_w = os.pipe()
    kids, socks = [], []
    for i in range(width):
        ours, theirs = socket.socketpair()
        pid = fork()
        if pid == 0:
            os.close(park_w)
            state["x"] = pickle.loads(theirs.recv(1 << 16))
            theirs.sendall(pickle.dumps(("report", os.getpid(), state["x"], [("chooser", str(i), "fan.py:1")])))
            os.read(park_r, 1)
            os._exit(0)
        theirs.close()
        ours.sendall(pickle.dumps(i))
        ours.recv(1 << 16)
        kids.append(pid)
        socks.append(ours)
    m = sample([os.getpid()] + kids, limit=None)
    os.close(park_w)
    for pid in kids:
        os.waitpid(pid, 0)
    for x in socks:
        x.close()
    os.close(park_r)
    return {"heap_mib": mib, "processes": m.processes, "private_bytes": m.private_bytes,
            "private_per_process": m.private_bytes // m.processes, "sharing": m.sharing}


def walk_times(model: fc.Model, samples: int = 200) -> dict:
    """Median seconds of one state fingerprint of ``model``'s initial state, by each walk."""
    from ._app import fingerprint as _fingerprint
    from ._app.runtime import World

    world = World()
    world.setup(model.fn, model.args, model.kwargs)
    out: dict[str, float | None] = {}
    for walk in ("c", "python"):
        if walk == "c" and _fingerprint._cfingerprint is None:
            out["c_seconds"] = None
            continue
        _fingerprint.state_fingerprint(world, walk)
        times = []
        for _ in range(samples):
            t = time.perf_counter()
            _fingerprint.state_fingerprint(world, walk)
            times.append(time.perf_counter() - t)
        out[f"{walk}_seconds"] = statistics.median(times)
    for actor in world.actors:
        if actor.coro is not None:
            actor.coro.close()
    return out


def chain_fork_floor(depth: int, samples: int) -> float:
    """The libc fork round trip of a Python process at the end of a chain of ``depth`` live ancestors
    (each a fork of the previous one, parked): forkcheck's snapshots at that depth pay the same."""
    import ctypes
    import signal

    fork = ctypes.PyDLL(None).fork
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    park_r, park_w = os.pipe()  # ancestors wait on it until every copy of park_w is closed
    res_r, res_w = os.pipe()
    level, pid = 0, 0
    while level < depth:
        pid = fork()
        if pid != 0:
            break
        level += 1
    if level == depth:  # the deepest process
        os.close(park_w)
        median = py_fork_floor(0, samples, libc=True)
        if depth == 0:
            return median
        os.write(res_w, repr(median).encode())
        os._exit(0)
    os.close(park_w)
    if level > 0:  # an ancestor in the middle: parked until the deepest has finished
        os.read(park_r, 1)
        os._exit(0)
    os.close(res_w)
    out = os.read(res_r, 64)
    os.waitpid(pid, 0)
    for fd in (park_r, res_r):
        os.close(fd)
    return float(out)


def _worker(argv: list[str]) -> int:
    """Runs in a fresh interpreter, so that RSS figures and forks see only the heap under test."""
    kind = argv[0]
    if kind == "copy":
        out = copy_explore(int(argv[1]), int(argv[2]), argv[3], float(argv[4]))
    elif kind == "phases":
        out = {"phases": written_pages_by_phase()}
    elif kind == "child-memory":
        out = child_memory_floor(int(argv[1]), int(argv[2]))
    elif kind == "node-floor":
        out = {"floor_seconds": node_fork_floor(int(argv[1]))}
    elif kind == "chain-floor":
        out = {"floor_seconds": chain_fork_floor(int(argv[1]), int(argv[2]))}
    else:
        out = {"floor_seconds": py_fork_floor(int(argv[1]), int(argv[2]), libc=kind in ("libc-floor", "huge-floor"),
                                              huge=kind == "huge-floor")}
    print(json.dumps(out))
    return 0


def _run_worker(*args: Any, root_env: bool = False) -> dict:
    from ._app.hugepages import root_env as allocator_env

    env = allocator_env(dict(os.environ)) if root_env else None
    proc = subprocess.run([sys.executable, "-m", "forkcheck._bench", "--worker", *map(str, args)],
                          capture_output=True, text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- forkcheck runs

def fc_run(model: fc.Model, **kw: Any) -> dict:
    r = model.check(determinism_checks=0, **kw)
    s, m = r.stats, r.stats.memory
    return {"states": s.states, "transitions": s.transitions, "max_depth": s.max_depth, "seconds": s.seconds,
            "setup_seconds": s.setup_seconds,
            "ok": r.ok, "peak_snapshots": m.peak_snapshots, "sampled_snapshots": m.sampled_snapshots,
            "private_bytes": m.private_bytes,
            "logical_bytes": m.logical_bytes, "sharing": m.sharing, "private_per_snapshot": m.private_per_snapshot}


def machine() -> dict:
    return {"cores": os.cpu_count(), "kernel": platform.release(), "arch": platform.machine(),
            "python": platform.python_version(), "loadavg_start": list(os.getloadavg()),
            "cpu": _cpu_model(), "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mib(b: int | None) -> str:
    return "-" if b is None else f"{b / 2 ** 20:.1f}"


# --------------------------------------------------------------------------- the comparisons

def bench_snapshots(cfg: dict, workdir: str, say) -> tuple[list[dict], list[dict]]:
    floors, rows = [], []
    say("\n## 1-2. Snapshot strategies and the fork floor (lattice model; trans/s excludes setup)")
    for mib in cfg["sizes"]:
        pyf = _run_worker("floor", mib, cfg["floor_samples"])["floor_seconds"]
        cf = c_fork_floor(mib, cfg["floor_samples"], workdir)
        floor = {"heap_mib": mib, "python_floor_seconds": pyf, "c_floor_seconds": cf, "loadavg": os.getloadavg()[0]}
        floors.append(floor)
        say(f"heap {mib} MiB ({heap_objects(mib):,} objects): floor Python {pyf * 1e3:.2f} ms, "
            f"C {'-' if cf is None else f'{cf * 1e3:.2f}'} ms; load {os.getloadavg()[0]:.1f}")
        for depth in cfg["depths"]:
            for mode in ("fork", "replay", "deepcopy", "pickle"):
                if mode in ("fork", "replay"):
                    r = fc_run(lattice(mib=mib, depth=depth), snapshot=mode, strategy="dfs")
                    r["complete"] = r["states"] == lattice_counts(depth)[0]
                    run = r["seconds"] - r["setup_seconds"]
                    r["memory_bytes"] = r["private_bytes"]
                    r["memory_kind"] = (f"private (logical {_mib(r['logical_bytes'])} MiB) of {r['sampled_snapshots']} "
                                        f"snapshots (peak {r['peak_snapshots']})")
                else:
                    r = _run_worker("copy", mib, depth, mode, cfg["copy_budget"])
                    run = r["seconds"]
                    r["memory_bytes"], r["memory_kind"] = r["peak_growth_bytes"], "RSS growth"
                per = run / max(r["transitions"], 1)
                r.update(heap_mib=mib, depth=depth, mode=mode, run_seconds=run, trans_per_s=r["transitions"] / max(run, 1e-9),
                         x_py_floor=per / pyf, loadavg=os.getloadavg()[0])
                rows.append(r)
                floor.setdefault("fc_setup_seconds", r.get("setup_seconds"))
                say(f"  {mib:>4} MiB  depth {depth:>3}  {mode:<9}{r['states']:>7}{r['transitions']:>8}"
                    f"{'' if r['complete'] else '*':1}{run:>9.2f}{r['trans_per_s']:>10.1f}{r['x_py_floor']:>9.1f}"
                    f"{_mib(r['memory_bytes']):>10}  {r['memory_kind']}")
    return floors, rows


def bench_busy(cfg: dict, floors: list[dict], say) -> list[dict]:
    """Section 1's lattice on 1 MiB with transitions that do real work (``work=BUSY_MS``, about 1 ms each):
    fork snapshots against replay from the root, where replaying a path costs its transitions again.

    Printed under section 1's table, divided by its 1 MiB Python floor (measured again if it has none)."""
    pyf = next((f["python_floor_seconds"] for f in floors if f["heap_mib"] == 1), None)
    if pyf is None:
        pyf = _run_worker("floor", 1, cfg["floor_samples"])["floor_seconds"]
    work = busy_seconds()
    say(f"busy lattice, 1 MiB: each transition runs {BUSY_MS:,} iterations of Python arithmetic, "
        f"{work * 1e3:.2f} ms here; load {os.getloadavg()[0]:.1f}")
    rows = []
    for depth in cfg["busy_depths"]:
        by_mode = {}
        for mode in ("fork", "replay"):
            r = fc_run(lattice(mib=1, depth=depth, work=BUSY_MS), snapshot=mode, strategy="dfs")
            r["complete"] = r["states"] == lattice_counts(depth)[0]
            run = r["seconds"] - r["setup_seconds"]
            r.update(heap_mib=1, depth=depth, mode=f"{mode}-busy", run_seconds=run, work_seconds=work,
                     trans_per_s=r["transitions"] / max(run, 1e-9), x_py_floor=run / max(r["transitions"], 1) / pyf,
                     memory_bytes=r["private_bytes"], memory_kind="private", loadavg=os.getloadavg()[0])
            by_mode[mode] = r
            rows.append(r)
        speedup = by_mode["replay"]["run_seconds"] / max(by_mode["fork"]["run_seconds"], 1e-9)
        by_mode["fork"]["fork_speedup"] = speedup
        for mode, r in by_mode.items():
            say(f"  busy 1 MiB  depth {depth:>3}  {mode:<9}{r['states']:>7}{r['transitions']:>8}"
                f"{'' if r['complete'] else '*':1}{r['run_seconds']:>9.2f}{r['trans_per_s']:>10.1f}"
                f"{r['x_py_floor']:>9.1f}{_mib(r['memory_bytes']):>10}"
                + (f"  fork {speedup:.1f}x faster than replay" if mode == "replay" else ""))
    return rows


def bench_scaling(cfg: dict, say) -> list[dict]:
    sys.path.insert(0, str(ROOT / "examples"))
    from two_phase import two_phase

    say("\n## 3. Parallel scaling: two_phase(n=3), BFS")
    floor = _run_worker("floor", 0, cfg["floor_samples"])["floor_seconds"]
    say(f"floor (Python fork round trip, no heap) {floor * 1e3:.2f} ms")
    say(f"{'jobs':>5}{'states':>8}{'trans':>7}{'seconds':>9}{'trans/s':>9}{'speedup':>9}{'load':>6}")
    rows: list[dict] = []
    for jobs in range(1, (os.cpu_count() or 1) + 1):
        r = fc_run(two_phase(n=3), strategy="bfs", jobs=jobs)
        r.update(jobs=jobs, trans_per_s=r["transitions"] / r["seconds"], floor_seconds=floor, loadavg=os.getloadavg()[0])
        r["speedup"] = r["trans_per_s"] / rows[0]["trans_per_s"] if rows else 1.0
        rows.append(r)
        say(f"{jobs:>5}{r['states']:>8}{r['transitions']:>7}{r['seconds']:>9.2f}{r['trans_per_s']:>9.1f}{r['speedup']:>9.2f}{r['loadavg']:>6.1f}")
    return rows


def bench_transitions(cfg: dict, say) -> dict:
    """Section 0: two_phase(n=3), DFS, seconds per transition as a multiple of the node fork floor.

    The floor (:func:`node_fork_floor`, the mean of 500) is measured before and after the
    model's runs, and their mean is the divisor: the machine drifts between the two.
    """
    sys.path.insert(0, str(ROOT / "examples"))
    from two_phase import two_phase

    n, samples = cfg["two_phase_n"], cfg["node_floor_samples"]
    say(f"\n## 0. Per transition against the fork floor: two_phase(n={n}), DFS")
    before = _run_worker("node-floor", samples)["floor_seconds"]
    runs = []
    for jobs in (1, 2):
        r = fc_run(two_phase(n=n), strategy="dfs", jobs=jobs)
        r.update(jobs=jobs, run_seconds=r["seconds"] - r["setup_seconds"], loadavg=os.getloadavg()[0])
        r["seconds_per_transition"] = r["run_seconds"] / max(r["transitions"], 1)
        runs.append(r)
    after = _run_worker("node-floor", samples)["floor_seconds"]
    floor = (before + after) / 2
    say(f"floor: Python fork round trip through a node process holding 1 MiB (mean of {samples}): "
        f"before {before * 1e3:.3f} ms, after {after * 1e3:.3f} ms, mean {floor * 1e3:.3f} ms")
    say(f"{'jobs':>5}{'states':>8}{'trans':>7}{'run s':>8}{'ms/trans':>10}{'x floor':>9}{'load':>6}")
    for r in runs:
        r["x_floor"] = r["seconds_per_transition"] / floor
        say(f"{r['jobs']:>5}{r['states']:>8}{r['transitions']:>7}{r['run_seconds']:>8.2f}"
            f"{r['seconds_per_transition'] * 1e3:>10.3f}{r['x_floor']:>9.2f}{r['loadavg']:>6.1f}")
    return {"n": n, "floor_before_seconds": before, "floor_after_seconds": after, "floor_seconds": floor,
            "samples": samples, "runs": runs}


@fc.model
def long_path():
    """One actor stepping +1 or +2 forever: a DFS goes straight down, leaving a live sibling per level."""
    state = {"seq": 0}

    def step(by):
        state["seq"] += by

    async def tick():
        while True:
            step(await fc.choose([1, 2]))

    fc.spawn(tick)


def bench_long_path(cfg: dict, say) -> dict:
    """Section 6: a long DFS path, with and without rebuilding deep snapshots shallow (pool.py)."""
    from ._check import pool

    n = cfg["long_states"]
    say(f"\n## 6. A long path: long_path(), DFS, {n} states (depth about {n - 1})")
    floors = {}
    for gen in (pool.REBASE_GENERATION, n):
        floors[gen] = _run_worker("chain-floor", gen, max(10, cfg["floor_samples"] // 2))["floor_seconds"]
        say(f"floor: libc fork round trip of a process {gen} forks below its root, its ancestors alive: "
            f"{floors[gen] * 1e3:.2f} ms")
    rows = {}
    saved = pool.REBASE_GENERATION
    say(f"{'rebuild':>20}{'states':>8}{'depth':>7}{'seconds':>9}{'states/s':>10}{'peak live':>11}")
    for label, gen in (("never", 1 << 30), (f"at {saved} forks", saved)):
        pool.REBASE_GENERATION = gen
        try:
            r = fc_run(long_path(), strategy="dfs", max_states=n)
        finally:
            pool.REBASE_GENERATION = saved
        r["states_per_s"] = r["states"] / max(r["seconds"] - r["setup_seconds"], 1e-9)
        rows[label] = r
        say(f"{label:>20}{r['states']:>8}{r['max_depth']:>7}{r['seconds']:>9.2f}{r['states_per_s']:>10.1f}"
            f"{r['peak_snapshots']:>11}")
    return {"states": n, "rebase_generation": saved, "floor_seconds": {str(k): v for k, v in floors.items()},
            "runs": rows, "loadavg": os.getloadavg()[0]}


async def _fan_memory(mib: int, width: int, huge_pages: bool) -> dict:
    """Private and logical memory of the root of ``fan`` and its ``width`` children, all live."""
    from ._check.memory import sample
    from ._model import as_model
    from ._check.snapshots import SnapshotTree

    tree = SnapshotTree(as_model(fan(mib=mib, width=width)), huge_pages=huge_pages)
    try:
        root = await tree.start()
        kids = [await tree.step(root, i) for i in range(width)]
        m = sample([root.pid] + [k.pid for k in kids], limit=None)
    finally:
        tree.close()
    return {"heap_mib": mib, "huge_pages": huge_pages, "snapshots": m.processes,
            "private_bytes": m.private_bytes,
            "logical_bytes": m.logical_bytes, "sharing": m.sharing, "private_per_snapshot": m.private_bytes // m.processes}


def bench_cow(cfg: dict, say) -> dict:
    """The targets of cheap snapshots, each next to a floor measured in this run."""
    import trio

    sys.path.insert(0, str(ROOT / "examples"))
    from two_phase import two_phase

    out: dict[str, Any] = {}
    say("\n## 5. Cheap snapshots: targets and floors")
    os_floor = _run_worker("floor", 0, cfg["floor_samples"])["floor_seconds"]
    libc_floor = _run_worker("libc-floor", 0, cfg["floor_samples"])["floor_seconds"]
    out["floors"] = {"os_fork_seconds": os_floor, "libc_fork_seconds": libc_floor}
    say(f"floors: Python os.fork() round trip {os_floor * 1e3:.2f} ms; libc fork() through ctypes (as snapshots fork) "
        f"{libc_floor * 1e3:.2f} ms; load {os.getloadavg()[0]:.1f}")
    chain = {d: _run_worker("chain-floor", d, cfg["floor_samples"])["floor_seconds"] for d in (0, 10, 50)}
    out["floors"]["chain_libc_fork_seconds"] = chain
    say("  libc fork round trip at the end of a chain of live forks (each level lengthens the anon_vma chains "
        "fork copies): " + ", ".join(f"depth {d} {t * 1e3:.2f} ms" for d, t in chain.items()))

    lo, hi = cfg["cow_sizes"][0], cfg["cow_sizes"][-1]
    say(f"a. time per transition with a big heap (lattice, depth {cfg['cow_depth']}, DFS): {hi} MiB against {lo} MiB "
        "(target: 512 MiB within 1.5 x of 16 MiB)")
    huge_floor = {mib: _run_worker("huge-floor", mib, cfg["floor_samples"], root_env=True)["floor_seconds"]
                  for mib in cfg["cow_sizes"]}
    out["floors"]["huge_libc_fork_seconds"] = huge_floor
    say("  floor: libc fork round trip of a process holding the heap on huge pages (as the root does): "
        + "  ".join(f"{m} MiB {t * 1e3:.2f} ms" for m, t in huge_floor.items())
        + f"   ratio {huge_floor[hi] / huge_floor[lo]:.2f}")
    rows = []
    for huge in (True, False):
        per = {}
        for mib in cfg["cow_sizes"]:
            r = fc_run(lattice(mib=mib, depth=cfg["cow_depth"]), strategy="dfs", huge_pages=huge)
            per[mib] = (r["seconds"] - r["setup_seconds"]) / r["transitions"]
            rows.append({"huge_pages": huge, "heap_mib": mib, "seconds_per_transition": per[mib], **r})
        say(f"  huge_pages={huge!s:<5}  " + "  ".join(f"{m} MiB {per[m] * 1e3:6.2f} ms" for m in per)
            + f"   ratio {per[hi] / per[lo]:.2f}")
    out["heap"] = rows

    n = cfg["two_phase_n"]
    say(f"b. time per transition against the fork round trip: two_phase(n={n}), DFS (target: within 2 x of the "
        "Python fork round trip)")
    rows = []
    for jobs in (1, 2):
        r = fc_run(two_phase(n=n), strategy="dfs", jobs=jobs)
        per = (r["seconds"] - r["setup_seconds"]) / r["transitions"]
        rows.append({"jobs": jobs, "seconds_per_transition": per, **r})
        say(f"  jobs={jobs}  {per * 1e3:5.2f} ms  = {per / os_floor:.2f} x os.fork floor, {per / libc_floor:.2f} x libc floor")
    out["two_phase"] = rows

    width = cfg["fan_width"]
    say(f"c-d. memory of the root and its {width} children, each one small transition away (a dict update) "
        "(targets: at most 128 KiB per snapshot; sharing at least 99.9 % with a 256 MiB heap and 64 snapshots)")
    floor = _run_worker("child-memory", 1, width, root_env=True)
    out["child_memory_floor"] = floor
    say(f"  floor: a bare Python process (1 MiB heap, huge pages) and {width} children, each of which unpickled a "
        f"request, updated a dict and pickled a reply: {floor['private_per_process'] / 1024:.0f} KiB private each")
    rows = []
    for mib, huge in ((1, True), (1, False), (cfg["fan_heap"], True), (cfg["fan_heap"], False)):
        m = trio.run(_fan_memory, mib, width, huge)
        rows.append(m)
        say(f"  heap {mib:>3} MiB huge_pages={huge!s:<5}: {m['snapshots']} "
            f"snapshots, private {_mib(m['private_bytes'])} MiB = {m['private_per_snapshot'] / 1024:.0f} KiB each, "
            f"logical {_mib(m['logical_bytes'])} MiB, sharing {m['sharing']:.2%}")
    out["fan"] = rows
    walks = walk_times(two_phase(n=n))
    out["walk_times"] = walks
    if walks["c_seconds"] is None:
        say("  fingerprint walk: the C walk is not built (no C compiler at install time, or not CPython 3.11 to 3.13)")
    else:
        say(f"  fingerprint of the initial state of two_phase(n={n}): C walk {walks['c_seconds'] * 1e6:.0f} us, "
            f"Python walk {walks['python_seconds'] * 1e6:.0f} us")
    phases = _run_worker("phases", root_env=True)["phases"]
    out["phases"] = phases
    if phases is None:
        say("  pages written per phase: not measured (frame numbers need CAP_SYS_ADMIN)")
    else:
        walk = "C" if phases["c_walk"] else "Python (the C walk is not built)"
        say(f"  pages a child of lattice(1 MiB) copies (its frame changed): {phases['fork']} after fork() alone, "
            f"{phases['transition']} with its transition, {phases['report']} with its report, {walk} fingerprint "
            f"walk ({phases['report'] * 4} KiB), {phases['report_python_walk']} with the Python walk instead; of which "
            f"with the parent's contents (written back, e.g. reference counts up and down): {phases['fork_unchanged']}, "
            f"{phases['transition_unchanged']}, {phases['report_unchanged']}, {phases['report_python_walk_unchanged']}")
    return out


def _time(cmd: list[str], cwd: str) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t, proc.stdout


def bench_spin(cfg: dict, workdir: str, say) -> dict:
    say("\n## 4. SPIN (spin -a -o3; gcc -O2 -DNOREDUCE; ./pan) against forkcheck (BFS, jobs=1)")
    spin = shutil.which("spin")
    if spin is None or shutil.which("gcc") is None:
        reason = "spin is not installed (apt-get install spin)" if spin is None else "gcc is not installed"
        say(f"skipped: {reason}")
        return {"skipped": reason}
    sys.path.insert(0, str(ROOT / "examples"))
    from dining_philosophers import philosophers
    from two_phase import two_phase

    models = [("two_phase", two_phase(n=3)), ("philosophers", philosophers(n=3, ordered=True))]
    out: dict[str, Any] = {"version": subprocess.run([spin, "-V"], capture_output=True, text=True).stdout.strip(), "models": []}
    say(f"{out['version']}")
    say(f"{'model':<14}{'fc states':>10}{'spin states':>12}{'fc trans':>9}{'spin trans':>11}{'fc s':>8}"
        f"{'pan s':>9}{'spin+gcc s':>11}{'fc/pan':>9}{'fc/total':>9}")
    for name, model in models:
        d = os.path.join(workdir, "spin-" + name)
        os.makedirs(d, exist_ok=True)
        shutil.copy(ROOT / "benchmarks" / "spin" / f"{name}.pml", d)
        t_spin, _ = _time([spin, "-a", "-o3", f"{name}.pml"], d)
        t_gcc, _ = _time(["gcc", "-O2", "-w", "-DNOREDUCE", "-o", "pan", "pan.c"], d)
        pans = []
        for _ in range(cfg["pan_runs"]):
            t, text = _time(["./pan", "-m100000"], d)
            pans.append(t)
        states = int(next(line.split()[0] for line in text.splitlines() if "states, stored" in line))
        trans = int(next(line.split()[0] for line in text.splitlines() if "transitions (= stored+matched)" in line))
        r = fc_run(model, strategy="bfs")
        pan = statistics.median(pans)
        row = {"model": name, "fc_states": r["states"], "spin_states": states, "fc_transitions": r["transitions"],
               "spin_transitions": trans, "fc_seconds": r["seconds"], "pan_seconds": pan, "spin_seconds": t_spin,
               "gcc_seconds": t_gcc, "ratio_pan": r["seconds"] / pan, "ratio_total": r["seconds"] / (pan + t_spin + t_gcc),
               "same_states": r["states"] == states}
        out["models"].append(row)
        say(f"{name:<14}{r['states']:>10}{states:>12}{r['transitions']:>9}{trans:>11}{r['seconds']:>8.2f}"
            f"{pan:>9.4f}{t_spin + t_gcc:>11.2f}{row['ratio_pan']:>9.0f}{row['ratio_total']:>9.1f}")
    return out


def plots(data: dict, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    rows = data["snapshots"]
    if rows:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for mode in ("fork", "replay", "deepcopy", "pickle"):
            for depth in sorted({r["depth"] for r in rows}):
                pts = [r for r in rows if r["mode"] == mode and r["depth"] == depth]
                xs = [r["heap_mib"] for r in pts]
                axes[0].plot(xs, [r["trans_per_s"] for r in pts], marker="o", label=f"{mode}, depth {depth}")
                axes[1].plot(xs, [max(r["memory_bytes"] or 0, 1) / 2 ** 20 for r in pts], marker="o", label=f"{mode}, depth {depth}")
        for ax, title in zip(axes, ("transitions/s", "peak memory, MiB (fc: private; copy: RSS growth)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("heap, MiB")
            ax.set_title(title)
            ax.grid(True, alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"snapshot strategies (load avg {data['machine']['loadavg_start'][0]:.1f}, {data['machine']['cores']} cores)")
        fig.tight_layout()
        fig.savefig(out / "bench_snapshots.png", dpi=100)
        plt.close(fig)
        written.append("bench_snapshots.png")
    if data["floors"]:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        fl = data["floors"]
        ax.plot([f["heap_mib"] for f in fl], [f["python_floor_seconds"] * 1e3 for f in fl], marker="o", label="Python os.fork")
        if all(f["c_floor_seconds"] is not None for f in fl):
            ax.plot([f["heap_mib"] for f in fl], [f["c_floor_seconds"] * 1e3 for f in fl], marker="o", label="C fork")
        for depth in sorted({r["depth"] for r in rows}):
            pts = [r for r in rows if r["mode"] == "fork" and r["depth"] == depth]
            ax.plot([r["heap_mib"] for r in pts], [1e3 / r["trans_per_s"] for r in pts], marker="s", label=f"forkcheck ms/transition, depth {depth}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("heap, MiB")
        ax.set_ylabel("ms")
        ax.set_title("fork round trip floor vs forkcheck")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "bench_floor.png", dpi=100)
        plt.close(fig)
        written.append("bench_floor.png")
    if data["scaling"]:
        fig, ax = plt.subplots(figsize=(5, 4))
        sc = data["scaling"]
        ax.bar([str(r["jobs"]) for r in sc], [r["trans_per_s"] for r in sc])
        ax.set_xlabel("jobs")
        ax.set_ylabel("transitions/s")
        ax.set_title("two_phase(n=3), BFS")
        fig.tight_layout()
        fig.savefig(out / "bench_scaling.png", dpi=100)
        plt.close(fig)
        written.append("bench_scaling.png")
    return written


MODES = {
    "smoke": {"sizes": [1], "depths": [10], "copy_budget": 2.0, "floor_samples": 20, "pan_runs": 3, "scaling": False,
              "cow": True, "cow_sizes": [1, 4], "cow_depth": 10, "fan_width": 4, "fan_heap": 4, "two_phase_n": 2,
              "long_states": 80, "node_floor_samples": 50,
              "busy_depths": [10]},
    "quick": {"sizes": [1, 64], "depths": [10], "copy_budget": 3.0, "floor_samples": 50, "pan_runs": 5, "scaling": True,
              "cow": True, "cow_sizes": [16, 64], "cow_depth": 40, "fan_width": 63, "fan_heap": 64, "two_phase_n": 3,
              "long_states": 600, "node_floor_samples": 500,
              "busy_depths": [10, 50]},
    "full": {"sizes": [1, 64, 512], "depths": [10, 50], "copy_budget": 15.0, "floor_samples": 100, "pan_runs": 10,
             "scaling": True, "cow": True, "cow_sizes": [16, 512], "cow_depth": 40, "fan_width": 63, "fan_heap": 256, "two_phase_n": 3,
             "long_states": 2000, "node_floor_samples": 500,
             "busy_depths": [10, 50]},
}


def main(argv: list[str] | None = None) -> int:
    """``forkcheck bench [--quick|--smoke] [--no-spin] [--out DIR]``, or ``forkcheck bench asyncio [--smoke]``;
    returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return _worker(argv[1:])
    if argv[:1] == ["asyncio"]:  # forkcheck bench asyncio: stateless schedules against states (_bench_asyncio.py)
        from ._bench_asyncio import main as asyncio_main

        return asyncio_main(argv[1:])
    p = argparse.ArgumentParser(prog="forkcheck bench", description="Measure forkcheck against its floor, copy-based "
                                "snapshots and SPIN; print tables, write bench.json and PNG plots (docs/benchmarks.md).")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="1 and 64 MiB, depth 10 (about 2 minutes)")
    g.add_argument("--smoke", action="store_true", help="the smallest run, for tests (under a minute)")
    p.add_argument("--no-spin", action="store_true", help="skip the SPIN comparison")
    p.add_argument("--only", choices=["transitions"], help="run section 0 alone (per transition against the floor)")
    p.add_argument("--out", default="bench-out", help="directory for bench.json and the PNGs (default: bench-out)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    cfg = MODES[mode]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        print(line, flush=True)

    t0 = time.perf_counter()
    data: dict[str, Any] = {"mode": mode, "config": cfg, "machine": machine()}
    m = data["machine"]
    say(f"# forkcheck bench ({mode})")
    say(f"machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}, Python {m['python']}")
    la = m["loadavg_start"]
    say(f"os.getloadavg() = ({la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f})" + ("  -- shared machine: timings are noisy" if la[0] > 2 else ""))
    with tempfile.TemporaryDirectory(prefix="forkcheck-bench-") as workdir:
        data["transitions"] = bench_transitions(cfg, say)
        if args.only == "transitions":  # section 0 alone
            data["machine"]["loadavg_end"] = list(os.getloadavg())
            (out / "bench.json").write_text(json.dumps(data, indent=1))
            return 0
        say(f"\ncolumns: heap, depth, mode, states, transitions (* = stopped at the {cfg['copy_budget']:.0f} s budget), "
            "run s, trans/s, x Python floor (per transition), memory MiB, what the memory is")
        data["floors"], data["snapshots"] = bench_snapshots(cfg, workdir, say)
        data["busy"] = bench_busy(cfg, data["floors"], say)
        data["scaling"] = bench_scaling(cfg, say) if cfg["scaling"] else []
        data["spin"] = {"skipped": "--no-spin"} if args.no_spin else bench_spin(cfg, workdir, say)
        data["cow"] = bench_cow(cfg, say) if cfg["cow"] else {}
        data["long_path"] = bench_long_path(cfg, say)
    data["machine"]["loadavg_end"] = list(os.getloadavg())
    data["seconds"] = time.perf_counter() - t0
    data["plots"] = plots(data, out)
    (out / "bench.json").write_text(json.dumps(data, indent=1))
    la = data["machine"]["loadavg_end"]
    say(f"\nos.getloadavg() at the end = ({la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f}); total {data['seconds']:.0f} s")
    say(f"wrote {out / 'bench.json'}" + (f" and {', '.join(data['plots'])}" if data["plots"] else " (no plots: pip install matplotlib)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
