"""Unbounded state spaces: the likely-infinite hint, and bounding a model by a condition (fc.constraint)."""

from __future__ import annotations

import io
import warnings

import pytest

import forkcheck as fc


@fc.model
def retry(bound=2, lossy=True):
    """Resend until acknowledged over a lossy network: every resend adds a message in flight, forever."""
    net = fc.Network("net", lossy=lossy)

    async def client():
        while True:
            net.send("server", "req")
            if await net.recv("client", timeout=True) is not fc.TIMEOUT:
                return

    async def server():
        while True:
            await net.recv("server")
            net.send("client", "ack")

    fc.spawn(client)
    fc.spawn(server, daemon=True)
    if bound is not None:
        fc.constraint(lambda: len(net.in_flight()) <= bound, name=f"at most {bound} in flight")


def test_a_constraint_bounds_an_infinite_retry_protocol_and_marks_the_cut():
    r = retry(bound=2).check(strategy="bfs")
    assert r.ok
    assert not r.complete
    (reason,) = r.incomplete
    assert reason.startswith("constraint 'at most 2 in flight' cut ") and reason.endswith(" states"), reason
    cut = int(reason.split(" cut ")[1].split()[0])
    assert cut > 0
    # The same states whatever the order, and every state within the bound plus the first beyond it.
    dfs = retry(bound=2).check(strategy="dfs")
    assert (dfs.stats.states, dfs.incomplete) == (r.stats.states, r.incomplete)
    wider = retry(bound=3).check(strategy="bfs")
    assert wider.stats.states > r.stats.states
    assert r.summary().startswith(f"Stopped early (constraint 'at most 2 in flight' cut {cut} states).")


def test_without_the_constraint_the_retry_protocol_does_not_end():
    r = retry(bound=None).check(strategy="bfs", max_states=300)
    (reason,) = r.incomplete
    assert reason.startswith("max_states=300 reached"), reason


def test_states_outside_the_constraint_are_still_checked():
    @fc.model
    def m():
        state = {"n": 0}

        async def counter():
            while True:
                state["n"] += 1
                await fc.checkpoint()

        fc.spawn(counter)
        fc.constraint(lambda: state["n"] < 3, name="n below 3")
        fc.invariant(lambda: state["n"] != 3, name="n is never 3")

    r = m.check(stop_on_violation=False)
    assert [v.name for v in r.violations] == ["n is never 3"]  # found in the first state outside
    assert r.stats.states == 3  # n = 1 (after the first step of setup), 2, 3
    # A violating state is an end anyway: nothing was left unexpanded because of the constraint.
    assert r.complete


def test_a_constraint_that_cuts_nothing_leaves_the_result_complete():
    @fc.model
    def m():
        state = {"n": 0}

        async def a():
            state["n"] += 1
            await fc.checkpoint()

        fc.spawn(a)
        fc.constraint(lambda: state["n"] < 100)

    r = m.check()
    assert r.ok and r.complete, r.incomplete


def test_a_constraint_that_excludes_the_initial_state_cuts_it():
    @fc.model
    def m():
        async def a():
            await fc.checkpoint()

        fc.spawn(a)
        fc.constraint(lambda: False, name="nothing")

    r = m.check()
    assert r.stats.states == 1 and r.incomplete == ["constraint 'nothing' cut 1 state"]


def test_constraint_errors_are_one_line():
    @fc.model
    def not_callable():
        async def a():
            await fc.checkpoint()
        fc.spawn(a)
        fc.constraint(3)

    with pytest.raises(fc.UsageError, match=r"fc.constraint\(\) needs a zero-argument callable"):
        not_callable.check()

    @fc.model
    def in_actor():
        async def a():
            fc.constraint(lambda: True)
            await fc.checkpoint()
        fc.spawn(a)

    with pytest.raises(fc.UsageError, match=r"fc.constraint\(\) must be called in the model's setup function"):
        in_actor.check()

    @fc.model
    def raises():
        async def a():
            await fc.checkpoint()
        fc.spawn(a)
        fc.constraint(lambda: 1 / 0, name="div")

    with pytest.raises(fc.ModelError, match=r"constraint 'div' raised ZeroDivisionError"):
        raises.check()


@fc.model
def ticker():
    state = {"seq": 0}

    async def tick():
        while True:
            state["seq"] += 1
            await fc.checkpoint()

    fc.spawn(tick)


@pytest.fixture
def small_window(monkeypatch):
    """The hint's window of new states, 100 instead of 1000: the same rule on a smaller model."""
    from forkcheck._check import search

    monkeypatch.setattr(search, "_DEPTH_WINDOW", 100)


def test_a_depth_that_grows_with_every_state_gets_the_hint_once(small_window):
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = ticker.check(max_states=250, progress=seen.append)
    hints = [w for w in caught if issubclass(w.category, fc.UnboundedWarning)]
    assert len(hints) == 1
    text = str(hints[0].message)
    assert "depth 99 after 100 states" in text and "fc.constraint" in text
    assert any(p.get("hint") == text for p in seen)
    (reason,) = r.incomplete
    assert reason.startswith("max_states=250 reached")


def test_a_large_finite_state_space_gets_no_hint(small_window):
    @fc.model
    def grid(n=15):
        pos = {"x": 0, "y": 0}

        def move(d):
            pos[d] = (pos[d] + 1) % n

        async def walker():
            while True:
                move(await fc.choose(["x", "y"]))

        fc.spawn(walker)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = grid.check(strategy="bfs")
    assert r.stats.states == 225 and r.complete
    assert not [w for w in caught if issubclass(w.category, fc.UnboundedWarning)]


def test_the_cli_shows_the_hint_once_while_the_check_runs():
    from forkcheck._cli import ProgressDisplay

    out = io.StringIO()
    display = ProgressDisplay("ticker()", "plain", out)
    display.update({"states": 1000, "hint": "likely infinite"})
    display.update({"states": 1200, "hint": "likely infinite"})
    assert out.getvalue().count("forkcheck: warning: likely infinite") == 1
