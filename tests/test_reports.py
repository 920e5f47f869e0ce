"""What users see of a check (issue 20, "Reports"): short counterexamples, the state at a loop, pytest's output."""

from __future__ import annotations

import pytest

import forkcheck as fc
from dining_philosophers import philosophers  # examples/ is on sys.path (conftest)



def _line_of(marker: str) -> int:
    """The line of this file that ends with ``# marker``."""
    with open(__file__) as f:
        return next(k for k, line in enumerate(f, 1) if line.rstrip().endswith(f"# {marker}"))


# --------------------------------------------------------------------------- shortest counterexamples


def test_the_default_search_gives_the_shortest_counterexample():
    r = philosophers.check()
    (v,) = r.violations
    assert v.kind == "deadlock" and len(v.trace) == 3
    assert sorted(s.label for s in v.trace) == ["acquire fork0", "acquire fork1", "acquire fork2"]


def test_a_depth_first_counterexample_is_shortened_through_the_graph_and_still_replays():
    # Exploring the whole graph depth first, the deadlock is first reached after 7 steps; the graph
    # holds a path of 3 to the same state, and that is the trace reported.
    m = philosophers(n=3)
    r = m.check(strategy="dfs", stop_on_violation=False, determinism_checks=0)
    (v,) = r.violations
    assert len(v.trace) == 3
    rep = fc.replay(m, v.trace.token)
    assert [k for k, _n, _m in rep.violations] == ["deadlock"]
    assert rep[-1].fingerprint == r.graph.nodes[next(u for u, d in r.graph.nodes(data=True)
                                                     if d["violations"])]["fingerprint"]


@fc.model
def watched():
    """Philosophers and a watcher that fails once every fork is taken: the failing step is the watcher's."""
    forks = [fc.Lock(f"fork{i}") for i in range(3)]

    async def philosopher(i):
        while True:
            async with forks[i]:
                async with forks[(i + 1) % 3]:
                    await fc.checkpoint()
            await fc.checkpoint()

    async def watcher():
        await fc.when(lambda: all(f.owner is not None for f in forks))
        assert False, "every fork is taken"

    for i in range(3):
        fc.spawn(philosopher, i, name=f"phil{i}")
    fc.spawn(watcher)


def test_shortening_keeps_the_transition_that_failed():
    # Depth first, the watcher's failing step is first taken after 7 other steps; the graph has a
    # path of 3 to the state it is taken from, and the failing step itself follows unchanged.
    r = watched.check(strategy="dfs", deadlock=False, stop_on_violation=False, determinism_checks=0)
    (v,) = r.violations
    assert v.kind == "assertion" and len(v.trace) == 4
    assert v.trace[-1].actor == "watcher" and v.trace[-1].label.startswith("when lambda: all(")
    rep = fc.replay(watched, v.trace.token)
    assert [k for k, _n, _m in rep.violations] == ["assertion"]


def test_state_counts_under_depth_first_search_are_unchanged_by_shortening():
    a = philosophers.check(strategy="dfs")
    assert (a.stats.states, a.stats.transitions) == (45, 97)


# --------------------------------------------------------------------------- liveness reports


@fc.model
def stuck_worker():
    s = {"go": False, "done": False}

    async def spinner():
        while True:
            await fc.checkpoint()

    async def worker():
        await fc.when(lambda: s["go"])  # the worker waits
        s["done"] = True

    fc.spawn(spinner)
    fc.spawn(worker)
    fc.eventually(lambda: s["done"], name="worker done")
    return s


def test_a_liveness_report_shows_the_state_where_its_loop_starts():
    (v,) = stuck_worker.check().violations
    assert v.kind == "liveness" and v.trace.cycle_start == 0
    assert v.state is not None
    worker = next(a for a in v.state.actors if a.name == "worker")
    assert worker.waiting == 'when lambda: s["go"]' and worker.where == f"{__file__}:{_line_of('the worker waits')}"
    text = v.format()
    assert "State where the loop starts (and to which it returns):" in text
    assert "worker: waiting for when lambda: s[\"go\"]" in text.replace("waiting, waiting", "waiting")


def test_a_liveness_run_that_ends_shows_its_last_state():
    @fc.model
    def gives_up():
        s = {"done": False}

        async def worker():
            await fc.choose([0, 1])

        fc.spawn(worker)
        fc.eventually(lambda: s["done"], name="done")

    (v,) = gives_up.check().violations
    assert v.trace.cycle_start is None and len(v.trace) == 1
    assert [a.status for a in v.state.actors] == ["done"]
    assert "State where the run ends:" in v.format()


# --------------------------------------------------------------------------- report noise


def test_closure_variables_the_actors_share_are_shown_once():
    (v,) = philosophers.check().violations
    text = v.format()
    assert text.count("eating=set()") == 1 and text.count("ordered=False") == 1
    assert "  shared by the actors: eating=set(), n=3, ordered=False" in text.splitlines()
    # The forks are the view: shown as the state, not again as a closure variable.
    assert text.count("Lock('fork0', owner='phil0')") == 1
    assert "      philosopher: i=0, left=0, right=1, first=0, second=1" in text.splitlines()
    assert "phil0: waiting for acquire fork1 at dining_philosophers.py:24" in text
    # The frames still hold every local, for programs that read them (the notebook).
    phil0 = v.state.actors[0]
    assert {"i", "eating", "forks", "n", "ordered"} <= set(phil0.frames[0][2])


def test_a_closure_variable_that_differs_between_actors_stays_with_each():
    @fc.model
    def factory():
        def make(k):
            async def worker():
                await fc.when(lambda: k > 5)  # both block at once: a deadlock in the initial state
            return worker

        for k in range(2):
            fc.spawn(make(k), name=f"w{k}")

    (v,) = factory.check().violations
    lines = v.format().splitlines()
    assert v.kind == "deadlock" and len(v.trace) == 0
    assert "      worker: k=0" in lines and "      worker: k=1" in lines and not any(line.startswith("  shared by the actors") for line in lines)


def test_when_labels_are_the_lambda_as_written_without_what_follows_it():
    @fc.model
    def gated():
        s = {"a": True, "b": True}

        async def waiter():
            await fc.when(lambda: s["a"]
                          and s["b"])  # a lambda over two lines, then a comment
            await fc.when(lambda: True)  # a comment after a constant lambda
            await fc.choose([lambda: 1, lambda: 2])  # two lambdas on one line
            assert False, "through"

        fc.spawn(waiter)

    (v,) = gated.check().violations
    assert [s.label for s in v.trace] == ['when lambda: s["a"] and s["b"]', "when lambda: True",
                                          "choose lambda: 1"]


def test_lambda_texts_on_every_python_the_walk_runs_on():
    from forkcheck._app.runtime import _lambda_text

    pair = [lambda: 1, lambda: 2]  # constants: Python 3.12 gives their code no source positions
    nested = lambda: (lambda: 5)  # noqa: E731
    texts = [_lambda_text(f.__code__) for f in (*pair, nested, nested())]
    assert texts == ["lambda: 1", "lambda: 2", "lambda: (lambda: 5)", "lambda: 5"]


# --------------------------------------------------------------------------- pytest's output

PYTEST_MODEL = '''
import enum
import forkcheck as fc

class Color(enum.Enum):
    RED = 1
    BLUE = 2

@fc.model
def two_bugs(limit=2):
    s = {"n": 0, "c": Color.RED}

    async def a():
        s["n"] += 1
        s["c"] = await fc.choose([Color.RED, Color.BLUE])
        assert s["n"] < limit, "too many"

    async def b():
        s["n"] += 1
        await fc.checkpoint()
        raise ValueError("boom")

    fc.spawn(a)
    fc.spawn(b)

def test_two():
    two_bugs(limit=2).check(stop_on_violation=False).assert_ok()
'''


def test_pytest_shows_what_failed_every_violation_and_the_shell_command_that_replays_each(pytester, monkeypatch):
    import shlex
    import subprocess
    import sys

    monkeypatch.setenv("COLUMNS", "250")  # the short summary line is cut to the terminal's width
    pytester.makepyfile(test_model=PYTEST_MODEL)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    summary = next(line for line in out.splitlines() if line.startswith("FAILED "))
    assert summary.startswith("FAILED test_model.py::test_two - forkcheck.PropertyViolation: two_bugs(limit=2): "
                              "2 violations: assertion failed in actor a: too many; actor b raised ValueError: boom")
    assert "def assert_ok" not in out and "_results.py" not in out  # forkcheck's own frame is hidden
    assert "[1 of 2] assertion violation" in out and "[2 of 2] exception violation" in out
    commands = [line.split("E", 1)[1].strip() for line in out.splitlines()
                if line.startswith("E ") and "forkcheck replay " in line]
    assert len(commands) == 2 and all(c.startswith("forkcheck replay test_model.py:two_bugs fc1:") for c in commands)
    assert all(c.endswith("--arg limit=2") for c in commands)
    # Each command replays from the shell: the enum in the state is named as under pytest.
    for command, kind in zip(commands, ("assertion", "exception")):
        proc = subprocess.run([sys.executable, "-m", "forkcheck", *shlex.split(command)[1:]], cwd=pytester.path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stdout.splitlines()[-1].startswith("The trace reproduces 1 violation: "), proc.stdout
        assert ("too many" if kind == "assertion" else "boom") in proc.stdout.splitlines()[-1]


SCRIPT_MODEL = '''
import enum
import forkcheck as fc

class Color(enum.Enum):
    RED = 1
    BLUE = 2

class Box:
    def __init__(self):
        self.color = Color.RED

@fc.model
def paint():
    box = Box()

    async def painter():
        box.color = await fc.choose([Color.RED, Color.BLUE])
        await fc.checkpoint()
        assert box.color is Color.RED, "painted blue"

    fc.spawn(painter)

if __name__ == "__main__":
    print(paint.check().violations[0].command)
'''


def test_a_script_prints_a_shell_replay_command_that_replays_its_classes_states(tmp_path):
    import shlex
    import subprocess
    import sys

    script = tmp_path / "paint.py"
    script.write_text(SCRIPT_MODEL)
    found = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    command = found.stdout.strip()
    assert command.startswith("forkcheck replay paint.py:paint fc1:"), found.stdout + found.stderr
    for cwd in (tmp_path, tmp_path.parent):  # from another directory too, by the file's path
        argv = shlex.split(command)[1:]
        if cwd != tmp_path:
            argv[1] = f"{script}:paint"
        proc = subprocess.run([sys.executable, "-m", "forkcheck", *argv], cwd=cwd, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "The trace reproduces 1 violation: assertion failed in actor painter: painted blue" in proc.stdout


def test_a_target_file_that_runs_a_check_when_imported_gets_a_warning_line(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "guide_style.py"
    target.write_text(SCRIPT_MODEL.replace("if __name__ == \"__main__\":\n    ", ""))
    line = target.read_text().splitlines().index("print(paint.check().violations[0].command)") + 1
    proc = subprocess.run([sys.executable, "-m", "forkcheck", "list", str(target)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "paint()"
    assert proc.stderr.splitlines() == [
        f"forkcheck: warning: guide_style.py:{line} runs a check when the file is imported, so forkcheck runs it "
        'too when it loads the file: put the file\'s own checks under `if __name__ == "__main__":`']
    target.write_text(SCRIPT_MODEL)  # the guarded form: no check on import, no warning
    proc = subprocess.run([sys.executable, "-m", "forkcheck", "list", str(target)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "paint()\n", "")


# --------------------------------------------------------------------------- warnings


def test_a_checks_warnings_point_at_the_line_that_called_it():
    @fc.model
    def never():
        s = {"x": 0}

        async def looper():
            while True:
                await fc.checkpoint()

        fc.spawn(looper)
        fc.eventually(lambda: s["x"] == 1, name="x is one")

    with pytest.warns(fc.LivenessNotChecked) as caught:
        never.check(max_depth=0)  # the warning's line
    (w,) = caught.list
    assert (w.filename, w.lineno) == (__file__, _line_of("the warning's line"))
    with fc.Explorer(never) as ex, pytest.warns(fc.LivenessNotChecked) as caught:
        ex.run(max_depth=0)  # the explorer's warning line
    (w,) = caught.list
    assert (w.filename, w.lineno) == (__file__, _line_of("the explorer's warning line"))


def test_every_warning_forkcheck_exports_is_a_forkcheck_warning():
    # The command line prints every ForkcheckWarning as a 'forkcheck: warning:' line (test_cli, test_options).
    exported = [getattr(fc, n) for n in fc.__all__]
    ours = [c for c in exported if isinstance(c, type) and issubclass(c, Warning)]
    assert {c.__name__ for c in ours} == {"ForkcheckWarning", "LivenessNotChecked", "OpaqueStateWarning", "UnboundedWarning"}
    assert all(issubclass(c, fc.ForkcheckWarning) for c in ours)


# --------------------------------------------------------------------------- an interrupted notebook run


@fc.model
def endless():
    s = {"n": 0}

    async def counter():
        while True:
            s["n"] += 1
            await fc.checkpoint()

    fc.spawn(counter)


def test_an_interrupted_explorer_run_raises_interrupted_with_the_partial_counts():
    import os
    import signal

    def interrupt(info):  # the search's progress callback: Ctrl-C once it has seen a few states
        if info["states"] >= 3:
            os.kill(os.getpid(), signal.SIGINT)

    with fc.Explorer(endless) as ex:
        with pytest.raises(fc.Interrupted) as e:
            ex.run(progress=interrupt, determinism_checks=0)
        r = e.value.result
        assert r.stats.states >= 3 and r.stats.transitions >= 2
        assert "interrupted by SIGINT" in "; ".join(r.incomplete) and not r.complete
        assert ex.graph.number_of_nodes() >= r.stats.states
        assert ex.root.step(0).actors[0].locals["s"] == "{'n': 2}"  # the explorer goes on


# --------------------------------------------------------------------------- messages


def test_a_threading_lock_held_across_an_await_names_the_line_when_asyncio_is_not_loaded(tmp_path):
    import subprocess
    import sys

    (tmp_path / "tl.py").write_text(
        "import threading\n"
        "import forkcheck as fc\n"
        "\n"
        "@fc.model\n"
        "def uses_thread_lock():\n"
        "    lock = threading.Lock()\n"
        "    async def a():\n"
        "        async with lock:\n"
        "            await fc.checkpoint()\n"
        "    fc.spawn(a)\n")
    # From the file's own directory: the frames of files under the current directory were left out.
    proc = subprocess.run([sys.executable, "-m", "forkcheck", "check", "tl.py", "--quiet"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "forkcheck: error: in actor a: '_thread.lock' object does not support the asynchronous context manager "
        "protocol at tl.py:8 (async with lock:): a threading lock cannot be held across an await; use fc.Lock "
        "(async with lock: ...), which is an interleaving point forkcheck explores")
