"""Each violation kind is found, with a trace, a message and the state."""

import pytest

import forkcheck as fc


@fc.model
def assert_model():
    state = {"x": 0}

    async def writer():
        state["x"] = await fc.choose([1, 2])

    async def checker():
        await fc.checkpoint()
        assert state["x"] != 2, f"x is {state['x']}"

    fc.spawn(writer)
    fc.spawn(checker)
    return state


def test_assertion():
    r = assert_model.check(strategy="bfs")
    (v,) = r.violations
    assert (v.kind, v.name) == ("assertion", "checker")
    assert "x is 2" in v.message
    assert "Traceback" in v.details and "assert state" in v.details
    assert [(s.actor, s.label) for s in v.trace] == [("writer", "choose 2"), ("checker", "checkpoint")]
    assert v.state.view == "{'x': 2}"
    assert "fc1:" in v.format() and "forkcheck.replay(assert_model()" in v.format()
    with pytest.raises(fc.PropertyViolation, match="x is 2") as info:
        r.assert_ok()
    assert isinstance(info.value, AssertionError)


def test_bare_assert_names_the_failing_line():
    @fc.model
    def m():
        async def a():
            v = await fc.choose([0, 1])
            assert v == 0

        fc.spawn(a)

    (v,) = m.check().violations
    # Under pytest the assert is rewritten and carries pytest's explanation; the line is in the traceback.
    assert "assert" in v.message and "assert v == 0" in v.details


def test_exception_carries_the_traceback():
    @fc.model
    def m():
        async def a():
            d = {}
            await fc.checkpoint()
            return d["missing"]

        fc.spawn(a)

    (v,) = m.check().violations
    assert (v.kind, v.name) == ("exception", "a")
    assert "KeyError" in v.message
    assert 'return d["missing"]' in v.details
    assert "forkcheck/_runtime.py" not in v.details  # forkcheck's own frames are left out


def test_deadlock_names_what_each_actor_waits_for():
    @fc.model
    def m():
        a, b = fc.Lock("a"), fc.Lock("b")

        async def one():
            async with a:
                async with b:
                    pass

        async def two():
            async with b:
                async with a:
                    pass

        fc.spawn(one)
        fc.spawn(two)

    r = m.check(strategy="bfs")
    (v,) = r.violations
    assert v.kind == "deadlock"
    assert "one waits for acquire b" in v.message and "two waits for acquire a" in v.message
    assert len(v.trace) == 2
    assert m.check(deadlock=False).ok


def test_all_actors_returned_is_not_a_deadlock():
    @fc.model
    def m():
        async def a():
            await fc.checkpoint()

        fc.spawn(a)

    assert m.check().ok


def test_crash_when_a_transition_kills_its_process():
    @fc.model
    def m():
        async def a():
            if await fc.choose(["fine", "exit"]) == "exit":
                import os
                os._exit(3)

        fc.spawn(a)

    r = m.check(stop_on_violation=False)
    (v,) = r.violations
    assert (v.kind, v.name) == ("crash", "a")
    assert "choose 'exit'" in v.message
    assert r.stats.states == 3


def test_sys_exit_in_an_actor_is_a_crash():
    @fc.model
    def m():
        async def a():
            await fc.checkpoint()
            raise SystemExit(2)

        fc.spawn(a)

    (v,) = m.check().violations
    assert v.kind == "crash" and "sys.exit(2)" in v.message


def test_timeout_of_a_transition_that_never_returns():
    from models import spinning

    (v,) = spinning.check(transition_timeout=0.5).violations
    assert (v.kind, v.name) == ("timeout", "spinner")
    assert "0.5s" in v.message


def test_awaiting_a_foreign_awaitable_is_reported():
    @fc.model
    def m():
        async def a():
            import asyncio
            await asyncio.sleep(0)

        fc.spawn(a)

    (v,) = m.check().violations
    assert v.kind == "exception" and "not a forkcheck primitive" in v.message


def test_nondeterminism_is_detected_and_names_the_cause():
    @fc.model
    def m():
        async def clock():
            await fc.checkpoint()
            import time
            now = time.perf_counter_ns()
            await fc.checkpoint()
            del now

        fc.spawn(clock)

    (v,) = m.check().violations
    assert (v.kind, v.name) == ("nondeterminism", "clock")
    assert "local 'now'" in v.message
    assert m.check(determinism_checks=0).ok


def test_violations_in_the_initial_state_have_an_empty_trace():
    @fc.model
    def m():
        async def idle():
            await fc.checkpoint()

        fc.spawn(idle)  # a model needs an actor (one with none is an error)
        fc.invariant(lambda: False, name="never")

    (v,) = m.check().violations
    assert len(v.trace) == 0 and "initial state" in v.format()


def test_one_counterexample_per_property_and_the_rest_explored():
    @fc.model
    def m():
        s = {"n": 0}

        async def a():
            for _ in range(3):
                s["n"] += await fc.choose([0, 1])

        fc.spawn(a)
        fc.invariant(lambda: s["n"] < 2, name="small")

    r = m.check(strategy="bfs", stop_on_violation=False)
    assert [v.name for v in r.violations] == ["small"]
    assert len(r.violations[0].trace) == 2


@pytest.mark.parametrize("fault", ["segfault", "sigkill"])
def test_a_transition_that_dies_of_a_signal_is_a_crash(fault):
    @fc.model
    def m():
        async def a():
            await fc.checkpoint()
            if fault == "segfault":
                import ctypes
                ctypes.string_at(0)  # reads address 0: SIGSEGV
            else:
                import os
                import signal
                os.kill(os.getpid(), signal.SIGKILL)

        fc.spawn(a)

    (v,) = m.check().violations
    assert (v.kind, v.name) == ("crash", "a")
    assert len(v.trace) == 1


def test_random_outside_choose_is_nondeterminism():
    @fc.model
    def m():
        async def a():
            import random
            await fc.checkpoint()
            roll = random.random()
            await fc.checkpoint()
            del roll

        fc.spawn(a)

    (v,) = m.check().violations
    assert v.kind == "nondeterminism" and "local 'roll'" in v.message
