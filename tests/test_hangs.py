"""User code that blocks or never returns: every piece of it runs under a timeout, reported with its place.

The setup function, each actor's first step, every transition, invariants,
conditions and the reprs of a description are timed by the snapshot process
itself (its SIGALRM timer interrupts the code where it is); a process that
does not even answer its timer is killed by the explorer, which says so.
Each check here runs in a subprocess with a deadline: before these
timeouts existed, most of them hung for good.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import wait_for_no_snapshots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(tmp_path, source: str, deadline: float = 60.0) -> tuple[str, float]:
    """Run a script that checks a model; its output and how long it took (fails rather than hang)."""
    script = tmp_path / "model.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=tmp_path)
    try:
        out, _ = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the check hung for {deadline:g}s:\n{out}")
    finally:
        assert not wait_for_no_snapshots(owner=proc.pid)
    return out, time.monotonic() - t0


THREADING_LOCK = """
    import threading
    import forkcheck as fc

    @fc.model
    def bank():
        lock = threading.Lock()
        acct = {"a": 10}
        async def transfer(i):
            lock.acquire()
            acct["a"] -= 1
            await fc.checkpoint()
            lock.release()
        fc.spawn(transfer, 0)
        fc.spawn(transfer, 1)

    r = bank.check(transition_timeout=2)
    v = r.violations[0]
    print("KIND", v.kind, v.name, len(v.trace))
    print("MESSAGE", v.message)
    print("STATE", [(a.name, a.status) for a in v.state.actors])
"""


def test_a_threading_lock_held_across_an_await_is_a_timeout_with_its_line(tmp_path):
    out, took = run(tmp_path, THREADING_LOCK)
    assert "KIND timeout transfer(1) 0" in out, out  # in the initial state: the second actor's first step
    assert "stuck at model.py:10 (`lock.acquire()`)" in out, out
    assert "within 2s" in out and "transition_timeout" in out
    assert "('transfer(0)', 'waiting'), ('transfer(1)', 'failed')" in out  # the state is still described
    assert took < 30


def test_a_blocking_call_in_a_later_step_has_its_trace(tmp_path):
    out, _ = run(tmp_path, """
        import time
        import forkcheck as fc

        @fc.model
        def sleepy():
            async def a():
                if await fc.choose([0, 1], label=["fast", "slow"]):
                    time.sleep(3600)
                await fc.checkpoint()
            fc.spawn(a)

        (v,) = sleepy.check(transition_timeout=1).violations
        print("KIND", v.kind, [s.label for s in v.trace])
        print("MESSAGE", v.message)
        print("DETAILS", v.details)
    """)
    assert "KIND timeout ['choose slow']" in out, out
    assert "stuck at model.py:9 (`time.sleep(3600)`)" in out, out
    assert 'File "' in out and "time.sleep(3600)" in out.split("DETAILS", 1)[1]  # the stack


def test_a_stuck_setup_function_is_a_model_error_with_its_line(tmp_path):
    out, took = run(tmp_path, """
        import time
        import forkcheck as fc

        @fc.model
        def slow_setup():
            async def a():
                await fc.checkpoint()
            fc.spawn(a)
            time.sleep(3600)

        try:
            slow_setup.check(transition_timeout=1)
        except fc.ModelError as exc:
            print("ERROR", exc)
    """)
    assert "ERROR slow_setup(): the setup function did not return within 1s: stuck at model.py:10 " \
           "(`time.sleep(3600)`)" in out, out
    assert took < 30


def test_an_invariant_that_never_returns_is_a_model_error(tmp_path):
    out, _ = run(tmp_path, """
        import forkcheck as fc

        def forever():
            while True:
                pass

        @fc.model
        def m():
            async def a():
                await fc.checkpoint()
            fc.spawn(a)
            fc.invariant(forever, name="spins")

        try:
            m.check(transition_timeout=1)
        except fc.ModelError as exc:
            print("ERROR", exc)
    """)
    assert "ERROR m(): invariant 'spins' did not return within 1s: stuck at model.py:5 (`while True:`)" in out, out


def test_a_model_that_catches_the_interruption_is_still_stopped(tmp_path):
    # `except BaseException` swallows forkcheck's interruption and goes on blocking: the timer's second
    # stage reports where it is and ends the process.
    out, took = run(tmp_path, """
        import time
        import forkcheck as fc

        @fc.model
        def stubborn():
            async def a():
                await fc.checkpoint()
                while True:
                    try:
                        time.sleep(3600)
                    except BaseException:
                        pass
            fc.spawn(a)

        (v,) = stubborn.check(transition_timeout=1).violations
        print("KIND", v.kind, v.name, len(v.trace))
        print("MESSAGE", v.message)
    """)
    assert "KIND timeout a 1" in out, out
    assert "actor a did not finish within 1s: stuck at model.py:11 (`time.sleep(3600)`) (and went on after " \
           "forkcheck interrupted it" in out, out
    assert took < 30


def test_a_model_that_swallows_the_interruption_and_goes_on_reaches_no_trusted_state(tmp_path):
    out, _ = run(tmp_path, """
        import time
        import forkcheck as fc

        @fc.model
        def sly():
            async def a():
                await fc.checkpoint()
                try:
                    time.sleep(3600)
                except BaseException:
                    pass  # and carry on, as if the sleep had ended
                await fc.checkpoint()
            fc.spawn(a)

        r = sly.check(transition_timeout=1)
        print("KINDS", [(v.kind, len(v.trace)) for v in r.violations], r.stats.states)
        print("MESSAGE", r.violations[0].message)
    """)
    assert "KINDS [('timeout', 1)] 2" in out, out  # the state after the step is reported, never expanded
    assert "caught forkcheck's interruption" in out


def test_a_process_that_ignores_its_timer_is_killed_by_the_explorer(tmp_path):
    # SIGALRM blocked: the snapshot's own timer never runs, as in C code that never returns to Python.
    out, took = run(tmp_path, """
        import signal
        import forkcheck as fc

        @fc.model
        def deaf():
            async def a():
                await fc.checkpoint()
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
                while True:
                    pass
            fc.spawn(a)

        (v,) = deaf.check(transition_timeout=1).violations
        print("KIND", v.kind, v.name)
        print("MESSAGE", v.message)
    """)
    assert "KIND timeout a" in out, out
    assert "did not answer even to its own timer" in out and "so it was killed" in out, out
    assert took < 30


def test_a_root_that_ignores_its_timer_during_setup_is_killed(tmp_path):
    out, took = run(tmp_path, """
        import signal
        import forkcheck as fc

        @fc.model
        def deaf_setup():
            async def a():
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
                while True:
                    pass
            fc.spawn(a)

        try:
            deaf_setup.check(transition_timeout=1)
        except fc.ModelError as exc:
            print("ERROR", exc)
    """)
    assert "ERROR deaf_setup(): the root snapshot process did not answer within" in out, out
    assert "while it ran the first step of actor a" in out, out
    assert took < 30


def test_a_repr_that_never_returns_does_not_hang_the_report(tmp_path):
    out, took = run(tmp_path, """
        import forkcheck as fc

        class Loop:
            def __repr__(self):
                while True:
                    pass

        @fc.model
        def m():
            state = {"x": Loop()}
            async def a():
                await fc.checkpoint()
                assert False, "boom"
            fc.spawn(a)
            return state

        (v,) = m.check(transition_timeout=1).violations
        print("KIND", v.kind)
        print("VIEW", v.state.view if v.state is not None else None)
    """)
    assert "KIND assertion" in out, out
    assert "VIEW <describe failed:" in out, out
    assert took < 30


def test_the_timer_does_not_fire_in_quick_steps():
    # Transitions well within the budget never see the timer's interruption.
    import forkcheck as fc
    from two_phase import two_phase

    r = two_phase(n=2).check(transition_timeout=1)
    assert r.ok and r.complete
    assert all(v.kind != "timeout" for v in r.violations)
    del fc


def test_an_interrupted_check_does_not_read_as_a_verdict(tmp_path):
    script = tmp_path / "endless.py"
    script.write_text(textwrap.dedent("""
        import forkcheck as fc

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
            print("SUMMARY", exc.result.summary(), flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "exploring"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    (summary,) = [line for line in out.splitlines() if line.startswith("SUMMARY")]
    assert summary.startswith("SUMMARY Interrupted, partial counts (interrupted by SIGINT"), summary
    assert summary.endswith("; no violation found before the interrupt"), summary
    assert not wait_for_no_snapshots(owner=proc.pid)
