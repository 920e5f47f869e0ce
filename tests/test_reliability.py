"""Reliability: bounded snapshots, rebuilding evicted states, budgets, interruption, hostile actors."""

import os
import signal
import subprocess
import sys
import textwrap
from collections import deque

import pytest

import forkcheck as fc
from conftest import wait_for_no_snapshots
from two_phase import two_phase


def edges(r):
    return sorted((u, v, tuple(d["labels"])) for u, v, d in r.graph.edges(data=True))


@pytest.mark.parametrize("strategy, jobs", [("bfs", 1), ("dfs", 1), ("bfs", 2)])
def test_a_snapshot_bound_below_the_frontier_gives_identical_results(strategy, jobs):
    free = two_phase(n=2).check(strategy=strategy, jobs=jobs)
    bounded = two_phase(n=2).check(strategy=strategy, jobs=jobs, max_snapshots=8)
    assert edges(bounded) == edges(free)
    assert free.stats.memory.peak_snapshots > 8
    assert bounded.stats.memory.peak_snapshots <= 8


def test_replay_mode_rebuilds_every_state_from_the_root():
    free = two_phase(n=2).check(strategy="bfs")
    replayed = two_phase(n=2).check(strategy="bfs", snapshot="replay")
    assert edges(replayed) == edges(free)
    assert replayed.stats.memory.peak_snapshots < free.stats.memory.peak_snapshots


def test_max_states_and_time_limit_stop_cleanly_and_say_so():
    r = two_phase(n=3).check(strategy="bfs", max_states=50)
    assert not r.complete and r.stats.states == 50
    assert r.summary().startswith("Stopped early (max_states=50 reached with ")
    r = two_phase(n=3).check(strategy="bfs", time_limit=0.5)
    assert not r.complete and 0 < r.stats.states < 288
    assert two_phase(n=2).check().complete


def test_an_actor_starting_a_thread_is_told_why_that_cannot_work():
    @fc.model
    def m():
        async def a():
            import threading
            import time
            threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
            await fc.checkpoint()

        fc.spawn(a)

    with pytest.raises(fc.UsageError, match="started a thread"):
        m.check()


def test_an_actor_calling_fork_is_told_why_that_cannot_work():
    @fc.model
    def m():
        async def a():
            await fc.checkpoint()
            os.fork()

        fc.spawn(a)

    with pytest.raises(fc.UsageError, match="called os.fork"):
        m.check()


def test_memory_limit_turns_a_runaway_allocation_into_a_violation():
    @fc.model
    def m():
        async def hog():
            await fc.checkpoint()
            blocks = [bytearray(64 << 20) for _ in range(64)]  # 4 GiB
            del blocks

        fc.spawn(hog)

    (v,) = m.check(memory_limit=1 << 30).violations
    assert v.kind in ("exception", "crash")
    assert "MemoryError" in v.message or v.kind == "crash"


def test_recursion_error_is_an_exception_with_its_cause():
    @fc.model
    def m():
        def down(n):
            return down(n + 1)

        async def a():
            await fc.checkpoint()
            down(0)

        fc.spawn(a)

    (v,) = m.check().violations
    assert v.kind == "exception" and "RecursionError" in v.message


def test_the_explorer_out_of_descriptors_ends_with_a_clear_error():
    """Every new snapshot needs a socket pair made by the explorer: with none left, the fork
    is retried (after asking the search to free snapshots), then the check stops clearly."""
    import resource

    import trio

    from forkcheck._model import as_model
    from forkcheck._check.snapshots import SnapshotTree

    @fc.model
    def m():
        async def a():
            await fc.checkpoint()

        fc.spawn(a)

    freed = []

    async def main():
        tree = SnapshotTree(as_model(m))
        tree.on_fork_failure = lambda: freed.append(1)
        try:
            root = await tree.start()
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            lowest_free = os.open(os.devnull, os.O_RDONLY)  # the lowest free number: all below are in use
            os.close(lowest_free)
            resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
            try:
                await tree.step(root, 0)
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        finally:
            tree.close()

    with pytest.raises(fc.ForkcheckError, match="cannot create snapshot processes .*Too many open files"):
        trio.run(main)
    assert len(freed) == 12


def test_a_model_that_limits_its_descriptors_still_forks():
    """A snapshot keeps one descriptor in reserve for the channel of its next child."""

    @fc.model
    def m():
        import resource

        lowest_free = os.open(os.devnull, os.O_RDONLY)  # the lowest free number: all below are in use
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, lowest_free))

        async def a():
            await fc.checkpoint()
            await fc.checkpoint()

        fc.spawn(a)

    r = m.check()
    assert r.ok and r.stats.states == 3


def test_a_model_that_uses_every_descriptor_is_told_so():
    @fc.model
    def m():
        async def a():
            await fc.checkpoint()
            held = []
            while True:
                try:
                    held.append(os.open("/dev/null", os.O_RDONLY))
                except OSError:
                    break
            await fc.checkpoint()

        fc.spawn(a)

    with pytest.raises(fc.ModelError, match="every file descriptor that RLIMIT_NOFILE allows.*reached by fc1:"):
        m.check()


INTERRUPTED = textwrap.dedent("""
    import forkcheck as fc
    import sys

    @fc.model
    def endless():
        state = {"n": 0}
        async def counter():
            while True:
                state["n"] += 1
                await fc.checkpoint()
        fc.spawn(counter)

    def progress(p):
        if p["states"] > 30:
            print("exploring", flush=True)
    try:
        endless.check(progress=progress)
    except fc.Interrupted as exc:
        print("partial", exc.signal_name, exc.result.stats.states, exc.result.complete, flush=True)
        raise
""")


@pytest.mark.parametrize("sig, name", [(signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")])
def test_interruption_returns_the_partial_result_and_leaves_nothing(tmp_path, sig, name):
    script = tmp_path / "endless.py"
    script.write_text(INTERRUPTED)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "exploring"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    partial = [line for line in out.splitlines() if line.startswith("partial")]
    assert partial, err
    _, signame, states, complete = partial[0].split()
    assert signame == name and int(states) > 30 and complete == "False"
    assert proc.returncode != 0
    assert not wait_for_no_snapshots(owner=proc.pid)


def test_the_cli_prints_the_partial_result_on_sigterm(tmp_path):
    script = tmp_path / "endless.py"
    script.write_text(INTERRUPTED.split("def progress")[0])
    proc = subprocess.Popen([sys.executable, "-m", "forkcheck", "check", f"{script}:endless"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert out.strip().splitlines()[-1].startswith("Interrupted, partial counts (interrupted by SIGTERM")
    assert "interrupted by SIGTERM" in err
    assert not wait_for_no_snapshots(owner=proc.pid)


def chains_bfs(width, length):
    """The chains model explored directly: (states, transitions, depth).

    A state is (chain, checkpoints passed); every chain ends in the one state where
    the walker has returned (its locals are gone).
    """
    init = ("start",)
    depth = {init: 0}
    queue = deque([init])
    transitions = 0
    while queue:
        st = queue.popleft()
        if st == init:
            succ = [(k, 0) for k in range(width)]
        elif st == ("done",):
            succ = []
        else:
            succ = [(st[0], st[1] + 1) if st[1] + 1 < length else ("done",)]
        for nxt in succ:
            transitions += 1
            if nxt not in depth:
                depth[nxt] = depth[st] + 1
                queue.append(nxt)
    return len(depth), transitions, max(depth.values())


@fc.model
def chains(width=100, length=10):
    async def walker():
        chain = await fc.choose(range(width))  # noqa: F841 - the chain taken is part of the state
        for _ in range(length):
            await fc.checkpoint()

    fc.spawn(walker)


def test_bfs_beyond_the_bound_small():
    r = chains(width=60, length=6).check(strategy="bfs", max_snapshots=20, jobs=2)
    assert (r.stats.states, r.stats.transitions, r.stats.max_depth) == chains_bfs(60, 6)
    assert r.stats.memory.peak_snapshots <= 20


@pytest.mark.slow
def test_stress_bfs_of_100k_states_with_a_frontier_far_beyond_the_bound():
    width, length, bound = 5000, 21, 500
    expected = chains_bfs(width, length)
    assert expected[0] > 100_000
    r = chains(width=width, length=length).check(strategy="bfs", max_snapshots=bound, jobs=2)
    assert (r.stats.states, r.stats.transitions, r.stats.max_depth) == expected
    assert r.stats.memory.peak_snapshots <= bound


@fc.model
def deaf():
    """An actor whose second step blocks SIGALRM and spins: its snapshot's own timer never runs."""

    async def spinner():
        await fc.checkpoint()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            pass

    fc.spawn(spinner)


def test_a_hung_snapshot_is_killed_at_its_timeout():
    """The explorer finds the hung child by its socket (it never learnt its pid) and kills it.

    A snapshot stops code that runs too long itself (its timer, tests/test_hangs.py); this child
    blocks the timer's signal, as code in C that never returns to Python would.
    """
    import time

    import trio

    from forkcheck._model import as_model
    from forkcheck._check.snapshots import SnapshotTree

    def children(pid):
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]

    async def main():
        tree = SnapshotTree(as_model(deaf), transition_timeout=0.5)
        try:
            root = await tree.start()
            child = await tree.step(root, 0)
            (v,) = child.report.violations
            assert v.kind == "timeout" and "did not answer even to its own timer" in v.message, v.message
            deadline = time.monotonic() + 0.5  # well before the child's own watchdog would notice
            while children(root.pid) and time.monotonic() < deadline:
                await trio.sleep(0.01)
            return children(root.pid)
        finally:
            tree.close()

    assert trio.run(main) == []


# --------------------------------------------------------------------------- versions (issue 13, section 4)


@fc.model
def one_step():
    async def a():
        await fc.checkpoint()

    fc.spawn(a)


def test_an_explorer_of_another_version_gets_one_line_not_a_hang(monkeypatch):
    monkeypatch.setattr(fc, "__version__", "9.9.9")
    with pytest.raises(fc.UsageError) as e:
        one_step.check()
    text = str(e.value)
    here = os.path.dirname(os.path.abspath(fc.__file__))
    assert "\n" not in text
    assert text == (f"the snapshot process runs forkcheck 0.1.0 (protocol {fc._protocol.PROTOCOL}) from {here} but the "
                    f"explorer runs forkcheck 9.9.9 (protocol {fc._protocol.PROTOCOL}) from {here}: run the explorer "
                    "and the snapshot processes from one installation (check sys.path and PYTHONPATH)")


def test_a_snapshot_process_of_another_version_is_refused(tmp_path, monkeypatch):
    # A second installation whose version differs, found first on the snapshot process's path.
    import shutil

    from forkcheck._check import snapshots as _snapshots

    here = os.path.dirname(os.path.abspath(fc.__file__))
    other = tmp_path / "forkcheck"
    shutil.copytree(here, other, ignore=shutil.ignore_patterns("__pycache__"))
    init = other / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', '__version__ = "0.0.9"'))
    monkeypatch.setattr(_snapshots, "_PACKAGE_PARENT", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # ``python -m`` looks in the working directory first
    with pytest.raises(fc.UsageError, match=f"^the snapshot process runs forkcheck 0.0.9 \\(protocol \\d+\\) from {other} "
                                            f"but the explorer runs forkcheck 0.1.0 \\(protocol \\d+\\) from {here}: "):
        one_step.check()


def _raw_root():
    """A root snapshot process started by hand, and our end of its channel."""
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(os.environ, FORKCHECK_OWNER=str(os.getpid()))
    proc = subprocess.Popen([sys.executable, "-m", "forkcheck._app.serve", str(theirs.fileno())], pass_fds=[theirs.fileno()],
                            process_group=0, env=env, stderr=subprocess.PIPE)
    theirs.close()
    ours.settimeout(30)
    return proc, ours


@pytest.mark.parametrize("first", ["unknown class", "truncated"])
def test_a_first_message_the_root_cannot_read_gets_a_one_line_answer(first):
    import pickle
    import struct

    from forkcheck import _protocol as P

    proc, sock = _raw_root()
    try:
        if first == "unknown class":  # what a Load of a renamed class looks like to this version
            data = pickle.dumps(P.Describe()).replace(b"Describe", b"Describf")
            sock.sendall(struct.pack("<Q", len(data)) + data)
        else:  # framing announcing more than comes, as another header format would
            sock.sendall(struct.pack("<Q", 1 << 20) + b"x" * 100)
        report = P.recv(sock)
        assert report.model_error[0] == "VersionError"
        assert report.model_error[1].startswith("the snapshot process runs forkcheck 0.1.0 from ")
        assert "cannot read the explorer's first message" in report.model_error[1]
        assert proc.wait(timeout=30) == 0 and b"Traceback" not in proc.stderr.read()
    finally:
        sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def _forked_generations(monkeypatch) -> list[int]:
    """Record the fork generation (forks below the root) of every snapshot process that forks."""
    from forkcheck._check.snapshots import SnapshotTree

    gens: list[int] = []
    step = SnapshotTree.step

    async def recording(self, snap, index, reseed=False, in_place=False):
        if not in_place:  # a process that takes its last transition itself does not fork
            gens.append(snap.gen)
        return await step(self, snap, index, reseed, in_place)

    monkeypatch.setattr(SnapshotTree, "step", recording)
    return gens


def test_a_long_path_never_forks_a_process_deep_in_fork_generations(monkeypatch):
    # Each fork lengthens the kernel's anon_vma chains that every later fork of the process walks:
    # a frontier snapshot REBASE_GENERATION forks deep is released and rebuilt from the root.
    from forkcheck._bench import long_path
    from forkcheck._check import pool, search

    gens = _forked_generations(monkeypatch)
    limit = pool.REBASE_GENERATION
    default = long_path().check(max_states=150)
    assert default.stats.states == 150 and max(gens) <= limit, max(gens)
    # Rebuilding alone, without the last transition taken in place (which keeps chains shorter still).
    monkeypatch.setattr(search, "IN_PLACE", False)
    gens.clear()
    r = long_path().check(max_states=150)
    assert r.stats.states == 150
    assert max(gens) <= limit, max(gens)
    assert min(gens) == 0 and gens.count(0) > 1  # the root rebuilt deep states
    # The same graph as without rebuilding, where forks go as deep as the path.
    gens.clear()
    monkeypatch.setattr(pool, "REBASE_GENERATION", 1 << 30)
    plain = long_path().check(max_states=150)
    assert edges(plain) == edges(r) == edges(default)
    assert max(gens) > 2 * limit
