"""The ``forkcheck`` command line, driven as users drive it: in subprocesses.

Models come from tests/cli_models.py (several models, so ``:name`` is needed)
and from small files written to ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from typing import Sequence

import networkx as nx
import pytest
from conftest import proc_stat, wait_for_no_snapshots

ROOT = Path(__file__).resolve().parent.parent
MODELS = "tests/cli_models.py"
MODELS_PATH = ROOT / MODELS

# The line of the die-hard hero's await: every transition of that model happens there.
CHOOSE_LINE = next(i for i, line in enumerate(MODELS_PATH.read_text().splitlines(), 1)
                   if "pour(jugs, await fc.choose(JUG_MOVES)" in line)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # Work from a checkout that is not installed, too.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    for name in ("FORKCHECK_DEBUG", "FORCE_COLOR", "NO_COLOR"):
        env.pop(name, None)
    env.update(extra)
    return env


def finish_all(*procs: subprocess.Popen, timeout: float = 60) -> list[subprocess.CompletedProcess]:
    """Wait for commands run side by side; fail if one left a snapshot process behind.

    Snapshot processes are tagged with the pid of their explorer, the command.
    """
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:  # reap them all: a finished, unwaited command is a zombie to the leftover checks
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    for proc in procs:
        left = wait_for_no_snapshots(owner=proc.pid)
        assert not left, f"{proc.args} left snapshot processes behind: {left}"
    return results


def finish(proc: subprocess.Popen, timeout: float = 60) -> subprocess.CompletedProcess:
    """Wait for one command; see :func:`finish_all`."""
    return finish_all(proc, timeout=timeout)[0]


def start(*args: str, cwd: Path = ROOT, program: Sequence[str] = (sys.executable, "-m", "forkcheck"),
          **env: str) -> subprocess.Popen:
    """Start ``python -m forkcheck ARGS`` (or another program) with its output captured."""
    return subprocess.Popen([*program, *args], cwd=cwd, env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def forkcheck(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``python -m forkcheck ARGS`` to the end and capture its output."""
    return finish(start(*args, cwd=cwd), timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2 with exactly one ``forkcheck: error: ...`` line on stderr, no traceback; returns the line."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("forkcheck: error: "), lines[0]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def replay_line(stdout: str) -> str:
    """The command printed under "Replay it with:"."""
    lines = stdout.splitlines()
    return lines[lines.index("Replay it with:") + 1].strip()


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture(scope="module")
def die_hard_bfs() -> subprocess.CompletedProcess:
    """One BFS check of the die-hard model, shared by the tests that read its report or replay its token."""
    return forkcheck("check", f"{MODELS}:die_hard", "--strategy", "bfs", "--arg", "goal=4")


# --------------------------------------------------------------------------- check


def test_check_passing_model_exits_0_with_summary():
    proc = forkcheck("check", f"{MODELS}:counter", "--arg", "n=2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == [proc.stdout.strip()]  # the summary only
    assert re.fullmatch(r"Done\. states=\d+, transitions=\d+, depth=\d+, [\d.]+s.*; no violation", proc.stdout.strip())
    # No noise on stderr: at most plain progress lines (a loaded machine may take over 2 s).
    assert all(ln.startswith("forkcheck: checking counter(n=2): ") for ln in proc.stderr.splitlines())


def test_violation_report_and_its_replay_command_reproduce_it(die_hard_bfs):
    proc = die_hard_bfs
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "VIOLATION (invariant): invariant 'big != 4' is violated" in out
    assert "Counterexample:" in out
    steps = re.findall(r"^\s+(\d+)\. hero: choose '([a-z ]+)'  \((.+):(\d+)\)$", out, re.M)
    assert [int(n) for n, *_ in steps] == list(range(1, 7))  # BFS: the shortest solution has 6 moves
    assert {(path, int(line)) for _, _, path, line in steps} == {(MODELS, CHOOSE_LINE)}
    assert "State at the violation:" in out
    assert re.search(r"^\s+hero: .*cli_models\.py:%d$" % CHOOSE_LINE, out, re.M)  # the actor's position
    assert "state: {'big': 4, 'small': 3}" in out  # the model's shared state
    assert out.strip().splitlines()[-1].endswith("1 violation (invariant)")

    cmd = shlex.split(replay_line(out))
    assert cmd[:3] == ["forkcheck", "replay", f"{MODELS}:die_hard"]
    assert cmd[3].startswith("fc1:") and cmd[4:] == ["--arg", "goal=4"]
    again = forkcheck(*cmd[1:])
    assert again.returncode == 1, again.stderr
    assert "Step 6. hero: choose 'pour big into small'" in again.stdout
    assert "VIOLATION (invariant): invariant 'big != 4' is violated" in again.stdout
    assert "The trace reproduces 1 violation" in again.stdout


def test_die_hard_with_functions_reads_their_names_and_replays_from_another_directory(tmp_path):
    proc = forkcheck("check", f"{MODELS}:die_hard_functions", "--strategy", "bfs")
    assert proc.returncode == 1, proc.stderr
    steps = re.findall(r"^\s+\d+\. jugs: choose (\S+)  \(", proc.stdout, re.M)
    assert steps == ["fill_big", "big_to_small", "empty_small", "big_to_small", "fill_big", "big_to_small"]
    token = shlex.split(replay_line(proc.stdout))[3]
    copy = tmp_path / "moved" / "cli_models.py"
    copy.parent.mkdir()
    shutil.copy(MODELS_PATH, copy)
    again = forkcheck("replay", f"{copy}:die_hard_functions", token, cwd=tmp_path)
    assert again.returncode == 1 and again.stderr == "", again.stdout + again.stderr
    assert re.findall(r"^Step \d+\. jugs: choose (\S+)  \(", again.stdout, re.M) == steps
    assert "The trace reproduces 1 violation: invariant 'big != 4' is violated" in again.stdout


def test_model_files_load_under_their_name_and_two_of_one_name_do_not_replace_each_other(tmp_path, monkeypatch):
    from forkcheck._cli import load_source

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write(tmp_path / "a", "samename.py", "WHO = 'a'\n")
    b = write(tmp_path / "b", "samename.py", "WHO = 'b'\n")
    monkeypatch.setattr(sys, "path", list(sys.path))  # loading by path puts the file's directory on it
    first, second = load_source(str(a)), load_source(str(b))
    try:
        # The name, part of the fingerprints of the file's classes, holds no path: tokens replay after a move.
        assert first.__name__ == "_forkcheck_file_samename"
        assert second.__name__.startswith("_forkcheck_file_samename_") and (first.WHO, second.WHO) == ("a", "b")
        assert load_source(str(a)) is first and load_source(str(b)) is second
    finally:
        for module in (first, second):
            sys.modules.pop(module.__name__, None)


def test_replay_command_quotes_string_arguments_for_the_shell_and_runs_through_the_console_script():
    exe = shutil.which("forkcheck")
    if exe is None:
        pytest.skip("the forkcheck console script is not installed (pip install -e .)")
    # The installed entry point itself, not python -m.
    proc = finish(start("check", f"{MODELS}:greeter", "--arg", "name='bob'", program=[exe]))
    assert proc.returncode == 1, proc.stderr
    assert "VIOLATION (assertion): assertion failed in actor greet: greeted bob" in proc.stdout
    line = replay_line(proc.stdout)
    assert "--arg 'name='\"'\"'bob'\"'\"''" in line  # shlex.quote of name='bob'
    # Pasted into a shell as printed: the shell must hand name='bob' back to forkcheck.
    env = _env(PATH=os.pathsep.join([os.path.dirname(exe), os.environ.get("PATH", "")]))
    again = subprocess.run(line, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1, again.stderr
    assert "greeted bob" in again.stdout


def test_json_report_has_the_documented_keys(tmp_path):
    report = tmp_path / "report.json"
    proc = forkcheck("check", f"{MODELS}:die_hard", "--strategy", "bfs", "--json", str(report), "--quiet")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(report.read_text())
    assert set(data) == {"model", "target", "ok", "complete", "incomplete", "stats", "violations"}
    assert data["ok"] is False and data["model"] == "die_hard()"
    # die hard stops at its violation with states still unexpanded: the report says the search was partial
    assert data["complete"] is False and data["incomplete"][0].startswith("stopped at the first violation with ")
    assert set(data["stats"]) == {"states", "transitions", "max_depth", "seconds", "setup_seconds", "reduction",
                                  "skipped", "symmetry", "memory"}
    assert (data["stats"]["reduction"], data["stats"]["skipped"]) == ("none", 0)
    assert data["stats"]["symmetry"] == {}  # die_hard declares no fc.symmetric values
    assert 0 < data["stats"]["setup_seconds"] < data["stats"]["seconds"]
    assert set(data["stats"]["memory"]) == {"peak_snapshots", "private_bytes", "logical_bytes", "sharing",
                                            "private_per_snapshot", "sampled_snapshots"}
    memory = data["stats"]["memory"]
    assert 0 < memory["sampled_snapshots"] <= memory["peak_snapshots"]
    assert 0 < memory["private_bytes"] < memory["logical_bytes"]
    assert data["stats"]["states"] > 0 and data["stats"]["max_depth"] == 6
    (v,) = data["violations"]
    assert {"kind", "name", "message", "trace"} <= set(v)
    assert (v["kind"], v["name"]) == ("invariant", "big != 4")
    assert set(v["trace"]) >= {"token", "steps"} and v["trace"]["token"].startswith("fc1:")
    assert len(v["trace"]["steps"]) == 6
    for step in v["trace"]["steps"]:
        assert set(step) == {"actor", "label", "where"}
        assert step["actor"] == "hero" and step["where"].endswith(f"cli_models.py:{CHOOSE_LINE}")
    assert v["trace"]["token"] in v["replay"]


def test_passing_json_report(tmp_path):
    report = tmp_path / "ok.json"
    proc = forkcheck("check", f"{MODELS}:counter", "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert data["ok"] is True and data["violations"] == [] and data["stats"]["states"] == 4


# --------------------------------------------------------------------------- graphs


def test_check_writes_dot_and_graphml(tmp_path):
    dot, graphml = tmp_path / "g.dot", tmp_path / "g.graphml"
    proc = forkcheck("check", f"{MODELS}:die_hard", "--dot", str(dot), "--graphml", str(graphml), "-q")
    assert proc.returncode == 1, proc.stderr
    states = int(re.search(r"states=(\d+)", proc.stdout).group(1))

    text = dot.read_text()
    assert text.startswith("digraph forkcheck {") and text.rstrip().endswith("}")
    nodes = re.findall(r"^  (\d+) \[label=\"(\d+)\"", text, re.M)
    assert len(nodes) == states and all(a == b for a, b in nodes)
    red = re.findall(r"^  (\d+) \[.*color=red", text, re.M)
    assert len(red) == 1  # the state where big == 4
    assert re.search(r"^  0 -> \d+ \[label=\"hero: choose 'fill big'\"\];$", text, re.M)

    g = nx.read_graphml(graphml)
    assert g.number_of_nodes() == states
    bad = [n for n, d in g.nodes(data=True) if json.loads(d["violations"])]
    assert bad == red
    _, _, edge = next(iter(g.edges(data=True)))
    assert isinstance(edge["label"], str) and isinstance(json.loads(edge["labels"]), list)
    assert json.loads(edge["steps"])[0]["actor"] == "hero"


def test_graph_command_json_and_dot_on_stdout(tmp_path):
    out = tmp_path / "graph.json"
    proc = forkcheck("graph", f"{MODELS}:counter", "--format", "json", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Done.")
    data = json.loads(out.read_text())
    assert {"format", "version", "model", "directed", "initial", "nodes", "edges"} <= set(data)
    assert len(data["nodes"]) == 4 and len(data["edges"]) == 4
    assert set(data["nodes"][0]) == {"id", "fingerprint", "violations", "enabled", "done", "labels"}
    assert set(data["edges"][0]) == {"source", "target", "label", "labels", "actor", "steps"}
    assert data["nodes"][-1]["done"] is True

    # -o - writes the graph to stdout; the summary then goes to stderr. The format comes from --format.
    proc = forkcheck("graph", f"{MODELS}:counter", "--format", "dot", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("digraph forkcheck {")
    assert proc.stderr.strip().splitlines()[-1].startswith("Done.")


def test_closed_stdout_exits_141_quietly():
    proc = start("graph", f"{MODELS}:counter", "--format", "json", "-o", "-")
    proc.stdout.close()  # the reader is gone before anything is written, as with `| head` done early
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "Error" not in err
    assert not wait_for_no_snapshots(owner=proc.pid)


def test_graph_format_is_required_when_the_extension_does_not_tell(tmp_path):
    assert_one_line_error(forkcheck("graph", f"{MODELS}:counter", "-o", str(tmp_path / "g.txt")),
                          "--format dot|graphml|json")


# --------------------------------------------------------------------------- list and replay


def test_list_prints_name_and_signature_per_model(tmp_path):
    proc = forkcheck("list", MODELS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "die_hard(big=5, small=3, goal=4)",
        "die_hard_functions()",
        "counter(n=2)",
        "greeter(name='world')",
        "philosophers()",
        "slow(steps=20, delay=0.25)",
        "small_die_hard = die_hard(big=3, small=2, goal=1)",
    ]
    none = write(tmp_path, "none.py", "def helper():\n    pass\n")
    proc = forkcheck("list", str(none))
    assert proc.returncode == 0 and proc.stdout == ""
    assert "defines no model" in proc.stderr


def test_replay_step_shows_only_that_step(die_hard_bfs):
    token = shlex.split(replay_line(die_hard_bfs.stdout))[3]
    two = forkcheck("replay", f"{MODELS}:die_hard", token, "--step", "2")
    assert two.returncode == 1, two.stderr  # the trace still ends in the violation
    lines = two.stdout.strip().splitlines()
    assert lines[0] == f"Step 2. hero: choose 'pour big into small'  ({MODELS}:{CHOOSE_LINE})"
    assert "state: {'big': 2, 'small': 3}" in two.stdout
    assert "Step 1." not in two.stdout and "Step 3." not in two.stdout and "Initial state" not in two.stdout

    zero = forkcheck("replay", f"{MODELS}:die_hard", token, "--step", "0")
    assert zero.stdout.startswith("Initial state:") and "state: {'big': 0, 'small': 0}" in zero.stdout

    assert_one_line_error(forkcheck("replay", f"{MODELS}:die_hard", token, "--step", "7"), "the trace has 6 steps")


def test_replay_with_other_arguments_is_nondeterminism_exit_1(die_hard_bfs):
    token = shlex.split(replay_line(die_hard_bfs.stdout))[3]
    other = forkcheck("replay", f"{MODELS}:die_hard", token, "--arg", "big=6")
    assert other.returncode == 1
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("forkcheck: error: the trace does not replay")
    assert ("Likeliest cause: the trace was found on die_hard(big=5, small=3, goal=4) and "
            "this replay runs die_hard(big=6, small=3, goal=4)") in lines[0]
    assert "--arg values" in lines[0]


def test_replay_after_a_repr_was_edited_notes_the_new_labels_and_still_reproduces(tmp_path):
    source = """
        import forkcheck as fc

        class Move:
            def __init__(self, n):
                self.n = n
            def __repr__(self):
                return f"old{self.n}"

        @fc.model
        def moves():
            got = []
            async def a():
                got.append((await fc.choose([Move(1), Move(2)])).n)
                assert got != [2]
            fc.spawn(a)
            return got
    """
    model = write(tmp_path, "moves.py", source)
    found = forkcheck("check", str(model))
    assert found.returncode == 1 and "1. a: choose old2" in found.stdout, found.stdout + found.stderr
    write(tmp_path, "moves.py", source.replace('f"old{self.n}"', 'f"new{self.n}"'))
    proc = forkcheck(*shlex.split(replay_line(found.stdout))[1:])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Step 1. a: choose new2" in proc.stdout
    assert "Note: step 1: the trace says 'a: choose old2', the replay took 'a: choose new2' to the same state" \
        in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("The trace reproduces 1 violation")


def test_replay_of_a_token_that_reaches_a_raising_invariant_reports_the_model_error(tmp_path):
    model = write(tmp_path, "raising.py", """
        import forkcheck as fc

        @fc.model
        def raising():
            s = {"n": 0}
            async def a():
                await fc.checkpoint()
                s["n"] += 1
                await fc.checkpoint()
                s["n"] += 1
            fc.spawn(a)
            fc.invariant(lambda: 1 / (2 - s["n"]), name="finite")
    """)
    found = forkcheck("check", str(model))
    token = re.search(r"reached by (fc1:[^)\s]+)\)", assert_one_line_error(found, "invariant 'finite' raised")).group(1)
    proc = forkcheck("replay", str(model), token)
    assert_one_line_error(proc, "step 2 of the trace ('a: checkpoint'): ",
                                 "invariant 'finite' raised ZeroDivisionError")
    assert "No violation" not in proc.stdout
    assert "Step 1. a: checkpoint" in proc.stdout and "Step 2." not in proc.stdout, proc.stdout  # the steps before it


def test_replay_of_a_lasso_marks_the_loop_and_exits_1(tmp_path):
    hog = write(tmp_path, "hog.py", """
        import forkcheck as fc

        @fc.model
        def hog():
            s = {"done": False}
            async def spinner():
                while True:
                    await fc.checkpoint()
            async def worker():
                await fc.checkpoint()
                s["done"] = True
            fc.spawn(spinner)
            fc.spawn(worker)
            fc.eventually(lambda: s["done"], name="worker done")
    """)
    found = forkcheck("check", str(hog), "--fairness", "none")
    assert found.returncode == 1, found.stderr
    cmd = shlex.split(replay_line(found.stdout))
    proc = forkcheck(*cmd[1:])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Replaying 1 step of hog() (a lasso: step 1 loops forever)"
    assert lines[lines.index("-- loop starts here --") + 1].startswith("Step 1. spinner: checkpoint")
    assert lines[-1].startswith("The trace is a lasso: step 1 leads back to the state before step 1, so step 1 "
                                "repeats forever")
    assert "No violation" not in proc.stdout


OPTIONS_MODEL = """
    import enum
    import forkcheck as fc

    class Color(enum.Enum):
        RED = 1
        BLUE = 2

    class Op:
        pass

    def left():
        return "L"

    def right():
        return "R"

    @fc.model
    def options(kind="functions"):
        # Every option set has two options; the chosen ones stay in the state, so that the
        # fingerprints replay checks depend on them.
        opts = {
            "functions": [left, right],
            "lambdas": [lambda: 'L', lambda: 'R'],
            "objects": [Op(), Op()],
            "enums": [Color.RED, Color.BLUE],
            "tuples": [(left, Op(), Color.RED), (right, Op(), Color.BLUE)],
        }[kind]
        got = []
        async def a():
            got.append(await fc.choose(opts))
            got.append(await fc.choose(opts))
            assert got != [opts[1], opts[0]], "right then left"
        fc.spawn(a)
        return got
"""


@pytest.mark.parametrize("kind, labels", [
    ("functions", ["choose right", "choose left"]),
    ("lambdas", ["choose lambda: 'R'", "choose lambda: 'L'"]),
    ("objects", ["choose <Op #1>", "choose <Op #0>"]),
    ("enums", ["choose Color.BLUE", "choose Color.RED"]),
    ("tuples", ["choose (right, <Op>, Color.BLUE)", "choose (left, <Op>, Color.RED)"]),
])
def test_a_token_replays_in_a_new_process_from_another_directory_after_the_model_file_moved(tmp_path, kind, labels):
    first, second, elsewhere = (tmp_path / d for d in ("first", "second", "elsewhere"))
    for d in (first, second, elsewhere):
        d.mkdir()
    model = write(first, "opts.py", OPTIONS_MODEL)
    report = tmp_path / "report.json"
    found = forkcheck("check", "opts.py", "--arg", f"kind={kind!r}", "--strategy", "bfs", "--json", str(report),
                      "-q", cwd=first)
    assert found.returncode == 1, found.stderr
    (violation,) = json.loads(report.read_text())["violations"]
    assert [st["label"] for st in violation["trace"]["steps"]] == labels
    steps = [ln for ln in found.stdout.splitlines() if re.match(r"\s+\d+\. a: ", ln)]
    assert len(steps) == 2 and not re.search(r"0x[0-9a-f]{6,}", "".join(steps)), found.stdout
    moved = shutil.move(str(model), str(second / "opts.py"))
    proc = forkcheck("replay", moved, violation["trace"]["token"], "--arg", f"kind={kind!r}", cwd=elsewhere)
    assert proc.returncode == 1 and proc.stderr == "", proc.stdout + proc.stderr
    assert [ln.split(": ", 1)[1].split("  (")[0] for ln in proc.stdout.splitlines() if ln.startswith("Step ")] == labels
    assert "The trace reproduces 1 violation: assertion failed in actor a: right then left" in proc.stdout
    assert "Note:" not in proc.stdout


# --------------------------------------------------------------------------- options and deadlock


def test_deadlock_and_no_deadlock():
    proc = forkcheck("check", f"{MODELS}:philosophers")
    assert proc.returncode == 1
    assert "VIOLATION (deadlock)" in proc.stdout and "deadlock" in proc.stdout.splitlines()[-1]
    proc = forkcheck("check", f"{MODELS}:philosophers", "--no-deadlock", "--strategy", "bfs", "--jobs", "2",
                     "--max-depth", "10", "--seed", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("no violation")


def test_liveness_lasso_and_fairness(tmp_path):
    hog = write(tmp_path, "hog.py", """
        import forkcheck as fc

        @fc.model
        def hog():
            s = {"done": False}
            async def spinner():
                while True:
                    await fc.checkpoint()
            async def worker():
                await fc.checkpoint()
                s["done"] = True
            fc.spawn(spinner)
            fc.spawn(worker)
            fc.eventually(lambda: s["done"], name="worker done")
    """)
    assert forkcheck("check", str(hog)).returncode == 0  # weak fairness (the default): the worker moves
    proc = forkcheck("check", str(hog), "--fairness", "none")
    assert proc.returncode == 1, proc.stderr
    assert "VIOLATION (liveness)" in proc.stdout
    assert "-- loop starts here --" in proc.stdout and "-- then back to step 1, forever --" in proc.stdout


def test_reduction_flag(tmp_path):
    proc = forkcheck("check", "examples/two_phase_mailboxes.py", "--arg", "n=2", "--reduction", "por")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reduction=por (" in proc.stdout and "transitions skipped)" in proc.stdout
    assert_one_line_error(forkcheck("check", "examples/two_phase.py", "--reduction", "sleep", "--max-depth", "3"),
                          "reduction='sleep' cannot be combined with max_depth=3")
    live = write(tmp_path, "live.py", """
        import forkcheck as fc

        @fc.model
        def live():
            s = {"done": False}
            async def worker():
                await fc.checkpoint()
                s["done"] = True
            fc.spawn(worker)
            fc.eventually(lambda: s["done"], name="worker done")
    """)
    assert_one_line_error(forkcheck("check", str(live), "--reduction", "por"),
                          "reduction='por' cannot be combined with the liveness properties", "eventually 'worker done'",
                          "fairness='weak'")


def test_module_target_and_bound_model_instance():
    # package.module:model form: tests/ is the current directory, so cli_models is importable.
    proc = forkcheck("check", "cli_models:counter", "--arg", "n=1", cwd=ROOT / "tests")
    assert proc.returncode == 0, proc.stderr
    # A forkcheck.Model at module level, with --arg overriding one of its bound arguments.
    proc = forkcheck("check", f"{MODELS}:small_die_hard", "--arg", "goal=9")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_single_model_file_needs_no_model_name(tmp_path):
    one = write(tmp_path, "one.py", """
        import forkcheck as fc

        @fc.model
        def single():
            async def a():
                await fc.checkpoint()
            fc.spawn(a)
    """)
    proc = forkcheck("check", str(one))
    assert proc.returncode == 0, proc.stderr
    assert "states=2" in proc.stdout


# --------------------------------------------------------------------------- bad input: exit 2, one line


@pytest.fixture
def bad_files(tmp_path):
    write(tmp_path, "two.py", """
        import forkcheck as fc

        @fc.model
        def first():
            pass

        @fc.model
        def second():
            pass

        def helper():
            pass
    """)
    write(tmp_path, "none.py", "def helper():\n    pass\n")
    write(tmp_path, "boom.py", "import forkcheck as fc\nx = 1 / 0\n")
    write(tmp_path, "syntax.py", "def broken(:\n    pass\n")
    write(tmp_path, "setup_raises.py", """
        import forkcheck as fc

        @fc.model
        def bad_setup():
            return {}["missing"]
    """)
    return tmp_path


@pytest.mark.parametrize("args, fragments", [
    (["check", "no/such/file.py"], ["no/such/file.py: no such file"]),
    (["check", "no_such_module_xyz:m"], ["no module named 'no_such_module_xyz'"]),
    (["check", "{tmp}/two.py"], ["defines 2 models (first, second): name one", "two.py:first"]),
    (["check", "{tmp}/two.py:third"], ["has no attribute 'third'", "first, second"]),
    (["check", "{tmp}/two.py:helper"], ["is a function (def helper), not a forkcheck model",
                                        "decorate it with @forkcheck.model"]),
    (["check", "{tmp}/none.py"], ["defines no model"]),
    (["check", "{tmp}/boom.py"], ["importing", "ZeroDivisionError", "boom.py:2"]),
    (["check", "{tmp}/syntax.py"], ["syntax.py:1: syntax error"]),
    (["check", "{tmp}/setup_raises.py"], ["KeyError", "setup_raises.py:6", "--debug"]),
    (["check", f"{MODELS}:greeter", "--arg", "name=bob"], ["bob is not a Python literal", "--arg name=\"'bob'\""]),
    (["check", f"{MODELS}:counter", "--arg", "n"], ["write NAME=VALUE"]),
    (["check", f"{MODELS}:counter", "--arg", "m=1"], ["unexpected keyword argument 'm'"]),
    (["check", f"{MODELS}:counter", "--max-depth", "-1"], ["--max-depth", "whole number >= 0"]),
    (["check", f"{MODELS}:counter", "--jobs", "0"], ["--jobs", ">= 1"]),
    (["check", f"{MODELS}:counter", "--strategy", "foo"], ["--strategy", "invalid choice: 'foo'"]),
    (["check", f"{MODELS}:counter", "--json", "/no/such/dir/r.json"], ["does not exist"]),
    (["check", f"{MODELS}:counter", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["replay", f"{MODELS}:die_hard", "not-a-token"], ["not a forkcheck trace token"]),
    (["replay", f"{MODELS}:die_hard", "fc1:eNqrVipWsoqONtBRSi9"], ["damaged"]),
    (["list", f"{MODELS}:counter"], ["list takes a file"]),
    ([], ["required: COMMAND"]),
])
def test_bad_input_is_one_line_exit_2(bad_files, args, fragments):
    args = [a.replace("{tmp}", str(bad_files)) for a in args]
    assert_one_line_error(forkcheck(*args), *fragments)


def test_an_option_check_rejects_is_exit_2():
    # argparse accepts any --seed integer; check() rejects values that break its rules (here, a bound).
    assert_one_line_error(forkcheck("check", f"{MODELS}:counter", "--max-states", "-1"), "max")


def test_page_fingerprints_from_the_command_line():
    # Pages mode rarely merges states (docs/pages.md), so bound the search.
    proc = forkcheck("check", f"{MODELS}:die_hard", "--fingerprint", "pages", "--strategy", "bfs", "--max-states", "40",
                     "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("Stopped early (max_states=40 reached with ")


def test_snapshot_and_huge_page_options(tmp_path):
    counts = []
    for extra in ([], ["--no-huge-pages"], ["--snapshot", "replay"]):
        report = tmp_path / "r.json"
        proc = forkcheck("check", f"{MODELS}:die_hard", "--strategy", "bfs", "--json", str(report), "--quiet", *extra)
        assert proc.returncode == 1, proc.stderr
        stats = json.loads(report.read_text())["stats"]
        counts.append((stats["states"], stats["transitions"]))
    assert counts[0] == counts[1] == counts[2]
    assert_one_line_error(forkcheck("check", f"{MODELS}:die_hard", "--snapshot", "copy"), "--snapshot", "copy")


def test_debug_shows_the_traceback(bad_files):
    proc = forkcheck("check", f"{bad_files}/boom.py", "--debug")
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr and "ZeroDivisionError" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("forkcheck: error: importing")


def test_internal_error_is_exit_3_with_one_line():
    # An unexpected exception inside a command: there is no public way to cause one, so patch a command.
    code = textwrap.dedent("""
        import sys
        import forkcheck._cli as cli
        def boom(args):
            raise RuntimeError("kaput")
        cli._COMMANDS["list"] = boom
        sys.exit(cli.main(sys.argv[1:]))
    """)
    proc = subprocess.run([sys.executable, "-c", code, "list", MODELS], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("forkcheck: error: internal error: RuntimeError: kaput") and "--debug" in line


def test_help_and_version():
    proc = forkcheck("--help")
    assert proc.returncode == 0 and all(c in proc.stdout for c in ("check", "replay", "graph", "list"))
    proc = forkcheck("check", "--help")
    assert proc.returncode == 0
    for option in ("--arg", "--strategy", "--max-depth", "--jobs", "--fingerprint", "--no-deadlock", "--seed",
                   "--json", "--dot", "--graphml", "--quiet", "--debug"):
        assert option in proc.stdout
    proc = forkcheck("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("forkcheck ")


# --------------------------------------------------------------------------- progress and Ctrl-C


def test_plain_progress_lines_are_rate_limited_and_quiet_silences_them():
    # Each of the 4 steps sleeps 0.4 s (and is taken twice by the determinism check): over 3 s.
    args = ["check", f"{MODELS}:slow", "--arg", "steps=4", "--arg", "delay=0.4"]
    plain, quiet = finish_all(start(*args), start(*args, "--quiet"))  # side by side: half the wait
    (out, err), (qout, qerr) = (plain.stdout, plain.stderr), (quiet.stdout, quiet.stderr)
    assert (plain.returncode, quiet.returncode) == (0, 0), err + qerr
    lines = err.strip().splitlines()
    seconds = float(re.search(r", ([\d.]+)s[,;]", out).group(1))
    assert 1 <= len(lines) <= seconds / 2 + 1, lines
    assert all(ln.startswith("forkcheck: checking slow(steps=4, delay=0.4): ") and "states/s" in ln
               and "live snapshots" in ln for ln in lines)
    assert qerr == "" and qout.startswith("Done.")


def test_live_progress_on_a_terminal():
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "forkcheck", "check", f"{MODELS}:slow", "--arg", "steps=3",
                             "--arg", "delay=0.3"], cwd=ROOT, env=_env(TERM="xterm", COLUMNS="160"),
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: the process is gone
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        out = proc.stdout.read().decode()
    finally:
        os.close(master)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == 0
    assert not wait_for_no_snapshots(owner=proc.pid)
    assert out.startswith("Done.")  # the summary goes to stdout, not to the terminal display
    text = seen.decode(errors="replace")
    assert "checking slow(steps=3, delay=0.3)" in text and "live snapshots" in text
    assert "\x1b[" in text  # drawn with terminal control sequences


def _snapshot_children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = proc_stat(name)
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if fields is not None and int(fields[1]) == pid and b"forkcheck._app.serve" in cmd:
            found.append(int(name))
    return found


def test_ctrl_c_exits_130_with_the_partial_result():
    proc = start("check", f"{MODELS}:slow", "--arg", "steps=100", "--arg", "delay=0.1")
    # Interrupt the exploration itself: once the root snapshot process (a child) exists.
    deadline = time.monotonic() + 30
    while not _snapshot_children(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    done = finish(proc, timeout=30)  # and every snapshot process is gone
    err = done.stderr
    assert done.returncode == 130, err
    assert err.strip().splitlines()[-1] == "forkcheck: interrupted by SIGINT: the counts above are partial"
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("Interrupted, partial counts (interrupted by SIGINT"), last
    # Either verdict-free ending, depending on whether the initial state was reached before the interrupt.
    assert last.endswith(("; no violation found before the interrupt",
                          "; nothing checked (interrupted before the initial state was reached)")), last
    assert "Traceback" not in err


def test_silent_passes_are_errors_with_their_file_and_line(tmp_path):
    # A missing await and a model without actors once printed "Done. states=1, transitions=0; no violation".
    (tmp_path / "slips.py").write_text(textwrap.dedent("""\
        import forkcheck as fc

        @fc.model
        def lost_update(n=2):
            state = {"count": 0, "finished": 0}

            async def increment():
                tmp = state["count"]
                fc.checkpoint()
                state["count"] = tmp + 1
                state["finished"] += 1

            for i in range(n):
                fc.spawn(increment, name=f"inc{i}")
            fc.invariant(lambda: state["finished"] < n or state["count"] == n, name="no lost update")

        @fc.model
        def empty():
            fc.invariant(lambda: True)
        """))
    assert_one_line_error(forkcheck("check", "slips.py:lost_update", cwd=tmp_path),
                          "in actor inc0: `fc.checkpoint()` at ", "slips.py:9 ", "write `await fc.checkpoint()`")
    assert_one_line_error(forkcheck("check", "slips.py:empty", cwd=tmp_path),
                          "the setup function empty (", "slips.py:17) spawned no actor", "fc.spawn(fn)")


def test_random_walks_report_an_incomplete_search_and_no_liveness_verdict(tmp_path):
    # Once: "Done. ...; no violation", "complete": true, no warning; the exhaustive check fails.
    (tmp_path / "rare.py").write_text(textwrap.dedent("""\
        import forkcheck as fc

        @fc.model
        def rare():
            s = {"x": 0}

            async def picker():
                k = await fc.choose(list(range(8)))
                while k == 7:
                    await fc.checkpoint()
                s["x"] = 1

            fc.spawn(picker)
            fc.eventually(lambda: s["x"] == 1, name="x is one")
        """))
    proc = forkcheck("check", "rare.py", "--strategy", "random", "--walks", "3", "--json", "r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("Stopped early (random walks left 1 state with transitions")
    assert proc.stderr.strip().splitlines() == [
        "forkcheck: warning: liveness properties 'x is one' were not checked: the graph is incomplete (random walks "
        "left 1 state with transitions not taken); use strategy='bfs' or 'dfs' to judge liveness"]
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["complete"] is False and data["incomplete"] == ["random walks left 1 state with transitions not taken"]
    assert forkcheck("check", "rare.py", "--quiet", cwd=tmp_path).returncode == 1


def test_an_opaque_object_on_the_command_line(tmp_path):
    (tmp_path / "shaper.py").write_text(textwrap.dedent("""\
        import zlib
        import forkcheck as fc

        @fc.model
        def shaper():
            async def a():
                z = zlib.compressobj()
                while True:
                    await fc.checkpoint()
                    z.compress(b"data")

            fc.spawn(a, name="a")
        """))
    proc = forkcheck("check", "shaper.py", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("forkcheck: error: shaper(): the state holds a zlib.Compress object (actor 'a', local 'z'")
    assert "--opaque distinct" in line
    proc = forkcheck("check", "shaper.py", "--quiet", "--opaque", "distinct", "--max-depth", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("Stopped early (max_depth=3 cut 1 state). states=4,")
    assert proc.stderr.strip().splitlines() == [
        "forkcheck: warning: states hold a zlib.Compress (a compressor's internal window cannot be read): with "
        "opaque='distinct' each of them is kept apart from every other state (never merged), so the counts grow and "
        "a loop is explored until max_depth, max_states or time_limit stops it"]
