"""No process outlives check(): not on success, not when the explorer is killed or interrupted."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import proc_stat, snapshot_processes, wait_for_no_snapshots

LONG_RUN = textwrap.dedent("""
    import sys
    import forkcheck as fc

    @fc.model
    def big():
        state = {"n": 0}
        async def counter(i):
            while True:
                state["n"] += await fc.choose([1, 2, 3])
        fc.spawn(counter, 0)
        fc.spawn(counter, 1)

    started = False
    def progress(p):
        global started
        if not started and p["states"] > 20:
            started = True
            print("exploring", flush=True)

    big.check(strategy="bfs", jobs=2, progress=progress)
""")


def start_explorer(tmp_path):
    script = tmp_path / "long_run.py"
    script.write_text(LONG_RUN)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "exploring", proc.stderr.read()
    ours = snapshot_processes(owner=proc.pid)
    assert len(ours) >= 2, "the explorer should have live snapshot processes"
    return proc


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_explorer_ends_every_snapshot(tmp_path, sig):
    proc = start_explorer(tmp_path)
    proc.send_signal(sig)
    proc.wait()
    t0 = time.monotonic()
    left = wait_for_no_snapshots(timeout=5, owner=proc.pid)
    assert not left, f"survivors {time.monotonic() - t0:.1f}s after the explorer died: {left}"
    assert time.monotonic() - t0 < 2.5


def test_ctrl_c_cleans_up_before_returning(tmp_path):
    proc = start_explorer(tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert "forkcheck.Interrupted: check interrupted by SIGINT" in err
    assert not wait_for_no_snapshots(timeout=2, owner=proc.pid)


def test_a_finished_check_leaves_nothing_behind():
    import forkcheck as fc
    from two_phase import two_phase

    two_phase(n=2).check(jobs=2)
    assert not snapshot_processes()


def test_the_root_is_a_fresh_interpreter_not_a_fork_of_the_caller():
    import forkcheck as fc

    @fc.model
    def m():
        import os as _os
        import sys as _sys
        marker = {"pid": _os.getpid(), "ppid": _os.getppid(), "argv": list(_sys.argv)}

        async def a():
            await fc.checkpoint()

        fc.spawn(a)
        return marker

    rep = fc.replay(m, fc.Trace().token)  # the empty trace: just the initial state
    assert "forkcheck/_app/serve.py'" in rep.initial.view  # started as `python -m forkcheck._app.serve`
    assert f"'ppid': {os.getpid()}" in rep.initial.view


SPINNING = textwrap.dedent("""
    import forkcheck as fc

    @fc.model
    def spin():
        async def a():
            if await fc.choose([0, 1]):
                while True:  # user code that never returns to forkcheck
                    pass
        fc.spawn(a)

    spin.check(transition_timeout=600)
""")


def _stat(pid: int) -> tuple[str, int]:
    """(state, parent pid) of ``pid``."""
    fields = proc_stat(pid)
    return ("gone", 0) if fields is None else (fields[0].decode(), int(fields[1]))


def test_a_snapshot_stuck_in_user_code_exits_when_its_explorer_and_root_are_gone(tmp_path):
    # The root kills every snapshot when its channel closes, and the explorer kills the process
    # group when the root dies; with both gone at once (the explorer stopped, the root killed, then
    # the explorer killed), a snapshot running user code that never returns is left alone: its
    # watchdog (SIGALRM, every second) notices that its own channel has closed and exits.
    script = tmp_path / "spin.py"
    script.write_text(SPINNING)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        busy = []
        while not busy and time.monotonic() < deadline:
            time.sleep(0.05)
            ours = [pid for pid, _ in snapshot_processes(owner=proc.pid)]
            # running, and not the root (which runs too while it starts)
            busy = [pid for pid in ours if _stat(pid)[0] == "R" and _stat(pid)[1] != proc.pid]
            if busy:
                time.sleep(0.3)  # still running: the model's endless loop
                busy = [pid for pid in busy if _stat(pid)[0] == "R"]
        assert busy, "no snapshot process got stuck in the model's loop"
        root = [pid for pid, _ in snapshot_processes(owner=proc.pid) if _stat(pid)[1] == proc.pid]
        proc.send_signal(signal.SIGSTOP)
        for pid in root:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        assert [pid for pid in busy if _stat(pid)[0] == "R"], "the stuck snapshot ended with its root"
        proc.kill()
        proc.wait()
        t0 = time.monotonic()
        left = wait_for_no_snapshots(timeout=5, owner=proc.pid)
        assert not left, f"survivors {time.monotonic() - t0:.1f}s after the explorer and the root died: {left}"
        assert root, "the root snapshot process was not found"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid, _ in snapshot_processes(owner=proc.pid):
            os.kill(pid, signal.SIGKILL)
