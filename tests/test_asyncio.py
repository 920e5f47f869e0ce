"""Unmodified asyncio programs (issue 17): the controlled loop, deviations, state, refusals, traces.

The programs are in aio_models.py, plain asyncio code under @fc.asyncio_model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import aio_models as M
import forkcheck as fc
from forkcheck._check.stateless import count_schedules

ROOT = Path(__file__).resolve().parent.parent
MODES = (0, 1, None)  # max_deviations: stock asyncio only, one deviation, any order


def first(model, **kw):
    r = model.check(**kw)
    assert r.violations, r.summary()
    return r.violations[0]


def passes_in_every_mode(model):
    for bound in MODES:
        r = model.check(max_deviations=bound)
        assert r.ok, (bound, r.violations[0] if r.violations else r.summary())
        assert r.complete == (bound is None) or r.complete, r.incomplete
        if bound is None:
            assert r.complete, r.incomplete


# --------------------------------------------------------------------------- the example, traces


def test_a_lost_update_is_found_in_stock_asyncios_own_schedule():
    v = first(M.lost_update)
    assert (v.kind, v.deviations, len(v.trace)) == ("assertion", 0, 7)
    assert "lost an update: 1 of 2" in v.message
    lines = [s.text() for s in v.trace]
    assert lines[0] == f"t=0.0 task inc-1: aio_models.py:{_line('lost_update', 'async def inc')} (start) -> " \
                       f"aio_models.py:{_line('lost_update', 'await asyncio.sleep(0)')} (sleep)"
    assert lines[1].startswith("t=0.0 task inc-2: ")
    assert lines[-1].endswith("-> raised AssertionError")
    text = v.format()
    assert "with 0 deviations from FIFO (stock asyncio runs this schedule)" in text
    assert "  1. t=0.0 task inc-1: aio_models.py:" in text
    with pytest.raises(fc.PropertyViolation):
        M.lost_update.check().assert_ok()


def _line(function: str, text: str) -> int:
    """The line of ``text`` in ``function`` of aio_models.py."""
    lines = (Path(__file__).parent / "aio_models.py").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if f"def {function}(" in line)
    return next(i for i in range(start, len(lines)) if text in lines[i]) + 1


def test_a_lock_makes_the_update_correct_in_every_schedule_mode():
    passes_in_every_mode(M.locked_update)


def test_the_schedule_without_deviations_is_the_order_stock_asyncio_runs():
    import asyncio

    expected: list = []
    asyncio.run(M.scenario(expected))  # stock asyncio, with its C accelerator, on real time
    assert len(expected) == 13
    r = M.stock_order(expected=tuple(expected)).check(max_deviations=0)
    assert r.ok, r.violations[0]
    v = first(M.stock_order(expected=tuple(expected)))  # other orders exist: one deviation changes it
    assert v.kind == "assertion" and v.deviations == 1


def test_the_stock_schedule_is_one_path_and_the_bound_says_what_it_cut():
    r = M.locked_update.check(max_deviations=0)
    assert r.ok and r.stats.states == r.stats.transitions + 1  # one path: stock asyncio's run
    assert not r.complete and any(x.startswith("max_deviations=0 cut the deviations of") for x in r.incomplete)


def test_replay_reproduces_a_counterexample_with_deviations():
    v = first(M.start_order)
    assert v.deviations == 1
    steps = fc.replay(M.start_order, v.trace.token)
    assert [s.deviation for s in steps] == [s.deviation for s in v.trace]
    assert "(2nd of 2 ready)" in steps[0].label or any("(2nd of 2 ready)" in s.label for s in steps)
    assert steps.violations and steps.violations[0][0] == "assertion"
    assert all(" -> " in str(s) for s in steps)


def test_the_same_program_twice_gives_the_same_graph():
    a = M.lost_update.check(stop_on_violation=False)
    b = M.lost_update.check(stop_on_violation=False, jobs=2)
    fp = lambda r: sorted(d["fingerprint"] for _, d in r.graph.nodes(data=True))  # noqa: E731
    assert (a.stats.states, a.stats.transitions) == (b.stats.states, b.stats.transitions)
    assert fp(a) == fp(b)
    assert [s.text() for s in a.violations[0].trace] == [s.text() for s in b.violations[0].trace]


def test_evicted_and_replayed_states_give_the_same_graph():
    # The root's node goes back to the frontier for its deviations: eviction and replay must keep it.
    for kw in ({"max_snapshots": 4, "strategy": "dfs"}, {"snapshot": "replay"}):
        r = M.increments(n=3).check(**kw)
        assert r.ok and r.complete, (kw, r.summary())
        assert (r.stats.states, r.stats.transitions) == (100, 228), kw  # as without eviction (benchmarks.md)


def test_the_c_and_python_walks_give_the_same_states(monkeypatch):
    from forkcheck._app import fingerprint

    if not fingerprint.C_WALK:
        pytest.skip("the C walk is not built here")
    nodes = lambda r: sorted(d["fingerprint"] for _, d in r.graph.nodes(data=True))  # noqa: E731
    for model in (M.first_completed, M.async_for, M.context_per_task):
        monkeypatch.delenv("FORKCHECK_PURE_PYTHON_WALK", raising=False)
        c = model.check(stop_on_violation=False)
        monkeypatch.setenv("FORKCHECK_PURE_PYTHON_WALK", "1")
        py = model.check(stop_on_violation=False)
        assert (c.stats.states, c.stats.transitions) == (py.stats.states, py.stats.transitions), model
        assert nodes(c) == nodes(py), model


# --------------------------------------------------------------------------- tasks, gather


def test_create_task_order_is_only_fifos():
    assert M.start_order.check(max_deviations=0).ok
    v = first(M.start_order)
    assert (v.kind, v.deviations) == ("assertion", 1)
    assert "the reader ran before the writer" in v.message


def test_gather_returns_results_in_argument_order_in_every_schedule():
    passes_in_every_mode(M.gather_results)


def test_a_task_exception_never_retrieved_is_a_violation():
    v = first(M.forgotten_task)
    assert v.kind == "exception" and v.name == "boom-1" and v.deviations == 0
    assert "Task exception was never retrieved: ValueError: nobody hears this" in v.message


# --------------------------------------------------------------------------- wait, wait_for, timeout


def test_wait_first_completed_may_return_two_tasks_on_a_slow_machine():
    assert M.first_completed.check(max_deviations=0).ok
    v = first(M.first_completed)
    assert (v.kind, v.deviations) == ("assertion", 1)
    assert "done holds ['fast', 'slow']" in v.message
    assert any("clock (early" in s.label for s in v.trace)  # the deviation: time passed while callbacks waited


def test_wait_for_times_out_a_job_within_its_margin_on_a_slow_machine():
    assert M.wait_for_margin.check(max_deviations=0).ok
    v = first(M.wait_for_margin)
    assert (v.kind, v.deviations) == ("exception", 1)
    assert v.message == "wait_for_margin raised TimeoutError"
    passes_in_every_mode(M.wait_for_handled)


def test_timeout_block_ends_one_way_or_the_other():
    passes_in_every_mode(M.timeout_block)


# --------------------------------------------------------------------------- TaskGroup


def test_a_task_group_cancels_the_siblings_of_a_failed_task():
    assert M.group_cancels_sibling.check(max_deviations=0).ok
    v = first(M.group_cancels_sibling)
    assert (v.kind, v.deviations) == ("assertion", 1)


def test_task_group_results():
    passes_in_every_mode(M.group_results)


# --------------------------------------------------------------------------- Queue


def test_a_bounded_queue_with_two_consumers_is_correct_in_every_schedule_mode():
    passes_in_every_mode(M.producer_consumer(n=2))


def test_check_then_get_deadlocks_and_the_report_says_where_each_task_waits():
    v = first(M.check_then_get)
    assert (v.kind, v.deviations) == ("deadlock", 0)
    assert v.message.startswith("deadlock at t=0.0: no callback is ready and no timer is pending")
    assert f"consumer-2 waits at aio_models.py:{_line('check_then_get', 'await q.get()')} (Queue.get)" in v.message
    assert "check_then_get waits at aio_models.py:" in v.message and "(gather)" in v.message


# --------------------------------------------------------------------------- Lock, Event, Condition, Semaphore


def test_two_locks_taken_in_opposite_orders_deadlock():
    v = first(M.lock_order)
    assert (v.kind, v.deviations) == ("deadlock", 0)
    assert "one-1 waits at" in v.message and "two-1 waits at" in v.message
    assert v.message.count("(Lock.acquire)") == 2
    passes_in_every_mode(M.lock_order_fixed)


def test_an_event_pulse_is_missed_by_a_waiter_that_starts_late():
    assert M.missed_pulse.check(max_deviations=0).ok
    v = first(M.missed_pulse)
    assert (v.kind, v.deviations) == ("deadlock", 1)
    assert "waiter-1 waits at" in v.message and "(Event.wait)" in v.message
    passes_in_every_mode(M.event_handoff)


def test_if_instead_of_while_around_condition_wait():
    v = first(M.condition_if)
    assert (v.kind, v.deviations) == ("exception", 0)
    assert "IndexError: pop from empty list" in v.message


@pytest.mark.slow
def test_while_around_condition_wait_is_correct():
    passes_in_every_mode(M.condition_while)


def test_a_semaphore_too_wide_breaks_an_invariant_declared_in_main():
    v = first(M.semaphore_too_wide)
    assert (v.kind, v.name, v.deviations) == ("invariant", "one at a time", 0)


@pytest.mark.slow
def test_a_semaphore_keeps_its_limit_in_every_schedule():
    passes_in_every_mode(M.semaphore_limit)


def test_a_semaphore_limit_holds_with_two_workers():
    passes_in_every_mode(M.semaphore_limit(limit=1, workers=2))


# --------------------------------------------------------------------------- sleep, call_later, virtual time


def test_an_hour_of_sleep_passes_at_once_and_exactly():
    r = M.long_sleep.check()
    assert r.ok and r.complete
    assert r.stats.seconds < 60


def test_sleeps_end_in_the_order_of_their_deadlines_unless_the_machine_is_slow():
    assert M.sleep_order.check(max_deviations=0).ok
    assert M.sleep_order.check(max_deviations=1).ok
    v = first(M.sleep_order)
    assert (v.kind, v.deviations) == ("assertion", 2)
    assert "['long', 'short']" in v.message
    times = [s.label.split()[0] for s in v.trace]
    assert times[0] == "t=0.0" and "t=2.0" in times


def test_call_later_runs_at_its_time():
    assert M.call_later_deadline.check(max_deviations=0).ok
    v = first(M.call_later_deadline)
    assert (v.kind, v.deviations) == ("assertion", 1)


def test_a_cancelled_call_later_does_not_run_unless_it_was_due_first():
    assert M.call_later_cancelled.check(max_deviations=0).ok
    v = first(M.call_later_cancelled)  # a slow machine: the timer fires before main wakes to cancel it
    assert (v.kind, v.deviations) == ("assertion", 1)


# --------------------------------------------------------------------------- state


def test_task_names_come_back_so_a_server_loop_has_finitely_many_states():
    r = M.serve_forever.check(max_states=2000)  # the bound only keeps a broken naming from running forever
    assert r.ok and r.complete and r.stats.states < 50, r.summary()
    labels = {d["label"] for _, _, d in r.graph.edges(data=True)}
    assert any("task handle-1" in lbl for lbl in labels) and not any("handle-2" in lbl for lbl in labels)


@pytest.mark.parametrize("later", [True, False])
def test_the_loops_queues_are_state(later):
    # After both tasks ran, only a timer (or a ready callback) that the loop alone holds tells the orders apart.
    assert M.hidden_callback(later=later).check(max_deviations=0).ok
    v = first(M.hidden_callback(later=later))
    assert (v.kind, v.deviations) == ("exception", 1)
    assert "Exception in callback alarm" in v.message and "RuntimeError: b ran first" in v.message


def test_contexts_are_state_and_each_task_sees_its_own():
    passes_in_every_mode(M.context_per_task)


@pytest.mark.slow
def test_states_merge_far_below_the_schedules_of_a_stateless_search():
    model = M.increments(n=3)
    s = count_schedules(model)
    r = model.check()
    assert s.complete and s.schedules == 1680
    assert r.ok and r.complete
    assert r.stats.states * 10 < s.schedules and r.stats.transitions * 50 < s.steps


def test_the_stateless_search_and_the_merged_graph_count_the_same_schedules():
    # Counted two independent ways: runs of the stateless explorer (no state merged), and the maximal paths
    # of forkcheck's graph (acyclic here), where each state stands for every schedule that reaches it.  If the
    # fingerprint merged two states that behave differently, the counts would differ.
    import networkx as nx

    for model in (M.lost_update(n=2), M.increments(n=2), M.start_order()):
        s = count_schedules(model)
        g = model.check(stop_on_violation=False).graph
        paths: dict[int, int] = {}
        for n in reversed(list(nx.topological_sort(g))):
            succ = list(g.successors(n))
            paths[n] = sum(len(g.edges[n, m]["steps"]) * paths[m] for m in succ) if succ else 1
        assert s.complete and s.schedules == paths[0], model


def test_a_coroutine_never_awaited_is_a_violation():
    v = first(M.never_awaited)
    assert v.kind == "exception" and "was never awaited" in v.message and v.deviations == 0


def test_an_async_generator_failing_to_close_is_a_violation():
    # asyncio.run's shutdown closes the generator (a task of its aclose()), which raises: stock asyncio logs it.
    v = first(M.bad_async_generator)
    assert v.kind == "exception" and v.name == "ticks.aclose-1"
    assert "unhandled exception during asyncio.run() shutdown: ValueError: cannot close" in v.message


def test_async_for_over_an_async_generator_that_awaits():
    assert M.async_for.check(max_deviations=0).ok
    v = first(M.async_for)
    assert (v.kind, v.deviations) == ("assertion", 1)


# --------------------------------------------------------------------------- entry points, setup


def test_an_entry_point_that_calls_asyncio_run_itself():
    v = first(M.entry_point)
    assert (v.kind, v.deviations) == ("assertion", 0)
    assert "assertion failed in entry_point(): lost an update: 1" in v.message


def test_an_entry_point_may_run_the_loop_with_asyncio_runner():
    v = first(M.entry_runner)
    assert (v.kind, v.deviations) == ("assertion", 0)


def test_an_entry_point_running_the_loop_in_a_for_loop_is_refused():
    with pytest.raises(fc.UsageError, match=r"entry_point_loops\(\) at aio_models.py:\d+ runs the event loop "
                                            r"inside an expression, a for loop or a with block"):
        M.entry_point_loops.check()


def test_a_function_that_never_runs_a_loop_is_refused():
    with pytest.raises(fc.UsageError, match="never ran an asyncio event loop"):
        M.no_loop.check()


def test_the_decorator_refuses_what_is_not_a_program():
    async def gen():
        yield 1

    with pytest.raises(fc.UsageError, match="asyncio_model decorates the program's async def main"):
        fc.asyncio_model(gen)
    with pytest.raises(fc.UsageError, match="max_deviations=1 applies to asyncio programs"):
        fc.model(lambda: None).check(max_deviations=1)
    with pytest.raises(fc.UsageError, match="max_deviations=1 cannot be combined with strategy='random'"):
        M.lost_update.check(max_deviations=1, strategy="random")
    for red in ("sleep", "por"):
        with pytest.raises(fc.UsageError, match=f"reduction='{red}' cannot be combined with an asyncio program"):
            M.lost_update.check(reduction=red)


def test_properties_are_declared_before_mains_first_await():
    with pytest.raises(fc.UsageError, match=r"fc.invariant\(\) declared after main's first await at aio_models.py:\d+"):
        M.late_invariant.check()
    with pytest.raises(fc.UsageError, match="checkpoint primitive at aio_models.py:.* belongs to @fc.model"):
        M.uses_fc_checkpoint.check()


# --------------------------------------------------------------------------- timeouts and constraints


def test_a_task_that_blocks_the_loop_is_a_timeout_of_that_task():
    v = first(M.blocks_in_a_task, transition_timeout=1)
    assert (v.kind, v.name) == ("timeout", "sleeper-1")
    line = _line("blocks_in_a_task", "time.sleep(60)")
    assert v.message.startswith(f"task sleeper-1 did not reach its next await within 1s: stuck at "
                                f"aio_models.py:{line} (`time.sleep(60)`)")
    assert "asyncio's own awaitables" in v.message and "fc.Lock" not in v.message
    assert v.trace[-1].text().endswith("-> timed out")


def test_a_callback_that_blocks_the_loop_is_a_timeout_of_that_callback():
    v = first(M.blocks_in_a_callback, transition_timeout=1)
    assert v.kind == "timeout"
    assert v.message.startswith(f"callback stall did not return within 1s: stuck at aio_models.py:"
                                f"{_line('blocks_in_a_callback', 'time.sleep(60)')}")


def test_a_constraint_declared_in_main_bounds_the_states():
    r = M.counts_forever.check()
    assert r.ok and r.incomplete == ["constraint 'below 3' cut 1 state"], (r.summary(), r.incomplete)
    with pytest.raises(fc.UsageError, match=r"fc.constraint\(\) declared after main's first await"):
        M.late_constraint.check()


# --------------------------------------------------------------------------- the outside world


@pytest.mark.parametrize("model, call, what", [
    (M.opens_a_socket, "loop.create_connection()", "sockets and streams"),
    (M.runs_a_subprocess, "loop.subprocess_exec()", "subprocesses"),
    (M.uses_a_thread, "loop.run_in_executor()", "threads"),
    (M.handles_a_signal, "loop.add_signal_handler()", "signals"),
])
def test_the_outside_world_is_refused_in_one_line_naming_the_call(model, call, what):
    with pytest.raises(fc.UsageError) as info:
        model.check()
    message = str(info.value)
    assert message.startswith(f"the program calls {call} at aio_models.py:")
    assert f"{what} are outside what forkcheck can explore" in message and "\n" not in message


# --------------------------------------------------------------------------- inside the snapshot


def _inside(view):
    import asyncio

    return asyncio.Task is asyncio.tasks._PyTask, type(asyncio.get_event_loop_policy()).__name__


def test_snapshots_run_pure_python_tasks_on_the_controlled_loop():
    with fc.Explorer(M.lost_update) as ex:
        pure, policy = ex.root.eval(_inside)
        assert pure and policy == "_Policy"
        assert [str(t) for t in ex.root.transitions][:1] == [t for t in [str(ex.root.transitions[0])]]
        node = ex.root.step(0)
        assert node.last_step.to.endswith("(sleep)")


# --------------------------------------------------------------------------- the command line


def test_the_command_line_checks_and_replays_an_asyncio_program(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    prog = tmp_path / "counter.py"
    prog.write_text((Path(__file__).parent / "aio_models.py").read_text())
    proc = subprocess.run([sys.executable, "-m", "forkcheck", "check", f"{prog}:lost_update", "--arg", "n=2"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "VIOLATION (assertion)" in out and "with 0 deviations from FIFO" in out
    assert "  1. t=0.0 task inc-1: counter.py:" in out and "(sleep)" in out
    replay = next(line.strip() for line in out.splitlines() if line.strip().startswith("forkcheck replay"))
    argv = replay.split()
    proc = subprocess.run([sys.executable, "-m", "forkcheck", *argv[1:]], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    assert "raised AssertionError" in proc.stdout
