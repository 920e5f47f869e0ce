"""Interactive exploration (forkcheck.Explorer / Node): the API, its displays, and the notebook in a real kernel."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET

import pytest

import forkcheck as fc
from conftest import ROOT, proc_stat, snapshot_processes
from dining_philosophers import philosophers
from mutex import broken
from two_phase import two_phase

EXAMPLES = ROOT / "examples"


def owner(pid: int) -> int | None:
    """The pid of the explorer that started a snapshot process, when the process says so."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"FORKCHECK_OWNER="):
            return int(item.split(b"=", 1)[1])
    return None


def ours(found: list[tuple[int, str]], owners: set[int]) -> list[tuple[int, str]]:
    """Keep the processes started by ``owners`` (or by anyone, when processes do not name their owner).

    Other explorers may run on the same machine (other test runs): they are not ours to count.
    """
    return [p for p in found if owner(p[0]) in owners | {None}]


def kernel_snapshots(kernel_pid: int) -> list[tuple[int, str]]:
    try:
        return snapshot_processes(owner=kernel_pid)
    except TypeError:  # a conftest whose helper does not take an owner
        return ours(snapshot_processes(), {kernel_pid})


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group: an explorer's root is its group leader."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = proc_stat(name)
        if fields is None:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            out.append(int(name))
    return out


def wait_for_group_end(pgid: int, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    left = group_members(pgid)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = group_members(pgid)
    return left


_SHARED: list[int] = []  # process groups of module-wide explorers, alive between tests on purpose


@pytest.fixture(scope="module")
def phil():
    """One explorer of the dining philosophers shared by several tests (saves starting interpreters)."""
    with fc.Explorer(philosophers(n=3)) as ex:
        _SHARED.append(ex.root.snap.pid)
        yield ex
        _SHARED.remove(ex.root.snap.pid)


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """conftest's leak check, except for the processes of the shared explorer."""
    before = {pid for pid, _ in snapshot_processes()}
    yield
    shared = {pid for pgid in _SHARED for pid in group_members(pgid)}
    deadline = time.monotonic() + 3
    while True:
        left = [p for p in ours(snapshot_processes(), {os.getpid()}) if p[0] not in before | shared]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not left, f"processes left behind: {left}"


def deadlock_of(ex):
    return ex.root.step("phil0").step("phil1").step("phil2")


# --------------------------------------------------------------------------- stepping


def test_step_returns_the_same_node_for_the_same_transition(phil):
    root = phil.root
    a = root.step(0)
    assert a is root.step(0) is root.step("phil0") is root.step("phil0: acquire fork0") is root.step(root.transitions[0])
    assert a is root.step("acquire fork0") and a is root.step(-3)
    assert root.children[0] is a
    assert a.parent is root and root.parent is None
    assert (root.depth, a.depth) == (0, 1)


@pytest.mark.parametrize("huge_pages, allocator", [(True, "malloc"), (False, None)])
def test_huge_pages_option(huge_pages, allocator, monkeypatch):
    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    with fc.Explorer(philosophers(n=2), huge_pages=huge_pages) as ex:
        assert ex.root.eval(lambda view: os.environ.get("PYTHONMALLOC")) == allocator
        assert ex.root.step(0).step(0).depth == 2


def test_transitions_match_the_checkers_order(phil):
    assert [(t.index, t.actor, t.label) for t in phil.root.transitions] == [
        (0, "phil0", "acquire fork0"), (1, "phil1", "acquire fork1"), (2, "phil2", "acquire fork2")]
    assert all(t.where.endswith("dining_philosophers.py:23") for t in phil.root.transitions)
    assert str(phil.root.transitions[1]) == "phil1: acquire fork1"


def test_trace_and_path(phil):
    d = deadlock_of(phil)
    assert [n.depth for n in d.path] == [0, 1, 2, 3] and d.path[0] is phil.root
    assert [(s.actor, s.label) for s in d.trace] == [("phil0", "acquire fork0"), ("phil1", "acquire fork1"),
                                                     ("phil2", "acquire fork2")]
    assert d.trace[-1].fingerprint == d.fingerprint
    assert phil.root.trace == fc.Trace()
    # the trace is the checker's: replay agrees
    assert fc.replay(philosophers(n=3), d.trace.token)[-1].fingerprint == d.fingerprint


def test_the_same_state_by_two_paths_is_one_graph_state(phil):
    x = phil.root.step("phil0").step("phil1")
    y = phil.root.step("phil1").step("phil0")
    assert x is not y and x.fingerprint == y.fingerprint and x.id == y.id
    assert phil.graph.has_edge(phil.root.id, x.parent.id) and phil.graph.has_edge(y.parent.id, y.id)


def test_actors_and_shared_state(phil):
    s1 = phil.root.step("phil0")
    a0, a1, _ = s1.actors
    assert (a0.name, a0.status, a0.waiting) == ("phil0", "waiting", "acquire fork1")
    assert a0.where.endswith("dining_philosophers.py:24") and a1.where.endswith("dining_philosophers.py:23")
    assert a0.locals["i"] == "0" and a0.locals["second"] == "1"
    assert a0.frames[0].function.endswith("philosopher")
    assert s1.state == "[Lock('fork0', owner='phil0'), Lock('fork1', owner=None), Lock('fork2', owner=None)]"
    assert "phil0: waiting for acquire fork1 at dining_philosophers.py:24" in s1.format()


def test_eval_runs_in_the_state_and_changes_nothing(phil):
    d = deadlock_of(phil)
    fp, before = d.fingerprint, d.eval(lambda forks: [f.owner for f in forks])
    assert before == ["phil0", "phil1", "phil2"]

    def meddle(forks):
        forks[0].owner = "nobody"
        return forks[0].owner

    assert d.eval(meddle) == "nobody"
    assert d.eval(lambda forks: [f.owner for f in forks]) == before
    assert d.fingerprint == fp
    with pytest.raises(fc.ModelError, match="ZeroDivisionError"):
        d.eval(lambda forks: 1 / 0)
    assert d.eval(lambda forks: len(forks)) == 3  # the process still answers


def test_deadlock_is_a_violation_unless_switched_off(phil):
    d = deadlock_of(phil)
    assert d.transitions == [] and d.blocked.startswith("deadlock: no actor can move")
    (v,) = d.violations
    assert (v.kind, v.name) == ("deadlock", "deadlock") and v.trace == d.trace
    assert "phil2 waits for acquire fork0" in v.message and "Lock('fork0', owner='phil0')" in v.format()
    assert phil.graph.nodes[d.id]["violations"] == ["deadlock"]
    with fc.Explorer(philosophers(n=3), deadlock=False) as ex:
        d2 = deadlock_of(ex)
        assert d2.violations == [] and d2.blocked and d2.fingerprint == d.fingerprint


def test_step_misuse_says_what_is_enabled(phil):
    with pytest.raises(fc.UsageError, match="3 enabled transitions"):
        phil.root.step(3)
    with pytest.raises(fc.UsageError, match="0: phil0: acquire fork0"):
        phil.root.step("phil7")
    s1 = phil.root.step("phil0")
    with pytest.raises(fc.UsageError, match="exactly one"):
        s1.step("acquire fork1")  # phil0 and phil1 both want fork1
    with pytest.raises(fc.UsageError, match="none can be taken"):
        deadlock_of(phil).step(0)
    with pytest.raises(fc.UsageError):
        phil.root.step(1.5)


def test_an_invariant_violation_and_goto():
    with fc.Explorer(broken) as ex:
        r = ex.run(strategy="bfs")
        (v,) = r.violations
        node = ex.goto(v)
        assert node is ex.goto(v.trace.token) is ex.goto(v.trace)
        assert [(w.kind, w.name) for w in node.violations] == [("invariant", "mutual exclusion")]
        assert node.eval(lambda s: sorted(s["in_critical"])) == [0, 1]
        assert ex.graph.nodes[node.id]["violations"] == ["invariant"]
        bad = fc.Trace([fc.Step(0, "p1", "nonsense")])
        with pytest.raises(fc.NondeterminismError, match="step 1"):
            ex.goto(bad)


def test_a_model_error_while_stepping_is_raised():
    @fc.model
    def divides():
        state = {"d": 1}

        async def zero():
            await fc.checkpoint()
            state["d"] = 0

        fc.spawn(zero, name="z")
        fc.invariant(lambda: 1 / state["d"], name="inverse")

    with fc.Explorer(divides) as ex:
        with pytest.raises(fc.ModelError, match="ZeroDivisionError"):
            ex.root.step("z")
        assert ex.root.children == {}
        assert len(ex.processes) == 1


def test_it_works_inside_a_running_asyncio_loop():
    async def main():
        with fc.Explorer(philosophers(n=2)) as ex:  # blocking calls, as in a Jupyter cell
            node = ex.root.step(0).step(0)
            return node.eval(lambda forks: [f.owner for f in forks])

    assert asyncio.run(main()) == ["phil0", "phil0"]


def test_trio_code_is_told_to_use_a_thread():
    import trio

    async def main(ex):
        with pytest.raises(fc.UsageError, match="to_thread"):
            ex.root.step(0)
        return (await trio.to_thread.run_sync(ex.root.step, 0)).depth

    with fc.Explorer(philosophers(n=2)) as ex:
        assert trio.run(main, ex) == 1


# --------------------------------------------------------------------------- run


@pytest.mark.parametrize("model", [two_phase(n=2), philosophers()], ids=["two_phase", "philosophers"])
@pytest.mark.parametrize("strategy", ["bfs", "dfs"])
def test_run_finds_what_check_finds(model, strategy):
    expected = model.check(strategy=strategy)
    with fc.Explorer(model) as ex:
        kept = ex.root.step(0).step(0)  # stepped by hand before the run: must survive it
        r = ex.run(strategy=strategy)
        assert (r.stats.states, r.stats.transitions, r.stats.max_depth) == \
            (expected.stats.states, expected.stats.transitions, expected.stats.max_depth)
        assert [(v.kind, v.name, v.trace) for v in r.violations] == \
            [(v.kind, v.name, v.trace) for v in expected.violations]
        assert r.graph.number_of_nodes() == expected.graph.number_of_nodes()
        assert (r.complete, r.incomplete) == (expected.complete, expected.incomplete)  # philosophers: stopped at the deadlock
        assert all(v.state is not None for v in r.violations)
        assert len(ex.graph) >= r.stats.states
        # the hand-stepped nodes are alive, their processes answer, and the run left no process of its own
        assert kept.eval(lambda view: 42) == 42 and kept.step(0).parent is kept
        assert sorted(ex.processes) == sorted(n.snap.pid for n in _all_nodes(ex.root))


def test_an_interrupted_run_leaves_the_explorer_usable():
    import threading

    @fc.model
    def endless():
        state = {"n": 0}

        async def counter():
            while True:
                state["n"] += await fc.choose([1, 2])

        fc.spawn(counter, name="c")
        return state

    with fc.Explorer(endless) as ex:
        kept = ex.root.step(1)
        timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                ex.run(strategy="bfs", jobs=2)
        finally:
            timer.join()
        assert sorted(ex.processes) == sorted(n.snap.pid for n in _all_nodes(ex.root))
        assert kept.step(0).eval(lambda s: s["n"]) == 3
        assert ex.run(strategy="bfs", max_states=5).stats.states >= 5


def _all_nodes(node):
    yield node
    for child in node.children.values():
        yield from _all_nodes(child)


def test_run_options_and_the_merged_graph():
    with fc.Explorer(two_phase(n=2)) as ex:
        partial = ex.run(strategy="bfs", max_states=10)
        assert not partial.complete and partial.stats.states == 10
        full = ex.run(strategy="bfs")
        assert len(ex.graph) == full.stats.states == 56
        # ex.graph has one edge per pair of states, with every label seen
        assert {(u, v) for u, v in full.graph.edges} == \
            {(u, v) for u, v in ex.graph.edges}  # bfs from the root numbers states the same way
        with pytest.raises(fc.UsageError, match="strategy"):
            ex.run(strategy="sideways")


def test_run_from_a_node_gives_traces_from_the_initial_state():
    with fc.Explorer(philosophers(n=3)) as ex:
        s1 = ex.root.step("phil0")
        r = ex.run(strategy="bfs", start=s1)
        (v,) = r.violations
        assert v.trace[0].actor == "phil0" and len(v.trace) == 3
        assert ex.goto(v).violations[0].kind == "deadlock"
        assert r.graph.number_of_nodes() == r.stats.states and ex.graph.number_of_nodes() >= r.stats.states + 1


def test_run_with_few_snapshots_rebuilds_from_the_start_node(strategy="bfs"):
    with fc.Explorer(two_phase(n=2)) as ex:
        start = ex.root.step("rm0: choose 'prepare'")
        free = ex.run(strategy=strategy, start=start, stop_on_violation=False)
        tight = ex.run(strategy=strategy, start=start, stop_on_violation=False, max_snapshots=12)
        assert (tight.stats.states, tight.stats.transitions) == (free.stats.states, free.stats.transitions)
        assert {d["fingerprint"] for _, d in tight.graph.nodes(data=True)} == \
            {d["fingerprint"] for _, d in free.graph.nodes(data=True)}
        assert sorted(ex.processes) == sorted(n.snap.pid for n in _all_nodes(ex.root))


# --------------------------------------------------------------------------- processes


def test_close_ends_every_process_and_the_explorer_says_so():
    ex = fc.Explorer(philosophers(n=3))
    d = deadlock_of(ex)
    pgid = ex.root.snap.pid
    assert len(ex.processes) == 4 and set(ex.processes) <= set(group_members(pgid))
    ex.close()
    assert not wait_for_group_end(pgid)
    assert not ex._loop.thread.is_alive()
    ex.close()  # twice is fine
    with pytest.raises(fc.UsageError, match="closed"):
        ex.root.step(1)
    assert d.violations[0].kind == "deadlock"  # what was already known stays readable
    assert "closed" in repr(ex)


def test_an_explorer_that_is_garbage_collected_ends_its_processes():
    ex = fc.Explorer(philosophers(n=2))
    ex.root.step(0)
    pgid, thread = ex.root.snap.pid, ex._loop.thread
    del ex
    gc.collect()
    assert not wait_for_group_end(pgid)
    thread.join(5)
    assert not thread.is_alive()


SCRIPT = textwrap.dedent("""
    import sys
    sys.path[:0] = [{root!r}, {examples!r}]
    import forkcheck as fc
    from dining_philosophers import philosophers

    ex = fc.Explorer(philosophers(n=3))
    d = ex.root.step(0).step(0).step(0)
    print(ex.root.snap.pid, flush=True)
    if sys.argv[1] == "wait":
        sys.stdin.read()
""")


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_processes_end_with_the_explorers_process(tmp_path, how):
    script = tmp_path / "explore.py"
    script.write_text(SCRIPT.format(root=str(ROOT), examples=str(EXAMPLES)))
    proc = subprocess.Popen([sys.executable, str(script), "wait" if how == "sigkill" else "exit"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pgid = int(proc.stdout.readline())
    if how == "sigkill":
        assert len(group_members(pgid)) >= 4
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert how == "sigkill" or proc.returncode == 0, err
    assert not wait_for_group_end(pgid)


# --------------------------------------------------------------------------- displays


@fc.model
def nasty():
    state = {"html": "<script>alert(1)</script> & <b>"}

    async def actor():
        weird = "<img src=x onerror=alert(2)>"  # noqa: F841 - shown as a local
        await fc.choose(["<em>x", "</table>y"])
        assert False, "<marquee>"

    fc.spawn(actor, name="<u>a</u>")
    return state


def test_html_views_escape_everything():
    with fc.Explorer(nasty) as ex:
        node = ex.root.step(0)
        r = ex.run(strategy="bfs")
        pages = [ex.root._repr_html_(), node._repr_html_(), r._repr_html_(), r.violations[0]._repr_html_(),
                 node.trace._repr_html_(), ex._repr_html_(), ex.graph_svg(current=node)]
    for page in pages:
        for raw in ("<script", "<img", "<u>", "<marquee>", "<em>", "</table>y"):
            assert raw not in page, (raw, page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in pages[0]
    assert "&lt;img src=x onerror=alert(2)&gt;" in pages[0]
    assert "&lt;marquee&gt;" in pages[2] and "&lt;u&gt;a&lt;/u&gt;" in pages[4]


def test_node_view_shows_actors_state_transitions_and_the_graph(phil):
    page = deadlock_of(phil)._repr_html_()
    assert "deadlock violation" in page and "No transition is enabled" in page
    assert page.count("<tr>") >= 4 and "phil2" in page and "acquire fork0" in page
    assert "Lock(&#x27;fork0&#x27;, owner=&#x27;phil0&#x27;)" in page
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page
    root_page = phil.root._repr_html_()
    assert "Enabled transitions" in root_page and "every actor returned" not in root_page


def test_result_and_trace_views():
    r = philosophers(n=3).check(strategy="bfs")
    page = r._repr_html_()
    assert "1 violation" in page and "<th" in page and "14" in page and "Counterexample" in page
    assert "forkcheck.replay(philosophers(n=3)" in page
    ok = philosophers(n=2, ordered=True).check()._repr_html_()
    assert "no violation" in ok
    t = r.violations[0].trace
    assert t._repr_html_().count("<tr>") == 4 and "phil2" in t._repr_html_()
    assert "initial state" in fc.Trace()._repr_html_()
    lasso = fc.Trace([fc.Step(0, "a", "x"), fc.Step(0, "a", "y")], cycle_start=1)._repr_html_()
    assert "loop starts here" in lasso and "back to step 2" in lasso
    assert str(r) == str(r) and repr(r).startswith("<CheckResult")  # text views unchanged


def test_graph_picture(phil):
    d = deadlock_of(phil)
    svg = phil.graph_svg(current=d)
    tree = ET.fromstring(svg)  # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    states = tree.findall(f"{ns}g")
    assert len(states) == len(phil.graph)
    by_id = {int(g.get("data-state")): g.find(f"{ns}circle") for g in states}
    assert by_id[d.id].get("fill") == "#c0392b" and by_id[d.id].get("stroke-width") == "3"  # current, violating
    assert by_id[phil.root.id].get("fill") == "#1f6fd1"  # on the path
    assert len(tree.findall(f"{ns}path")) == phil.graph.number_of_edges()
    assert repr(svg).startswith("<SVG") and svg._repr_html_() == str(svg)


def test_graph_picture_of_a_big_graph_is_capped():
    import networkx as nx

    from forkcheck._notebook import graph_svg

    g = nx.balanced_tree(3, 4, create_using=nx.DiGraph)  # 121 states
    g.add_edge(40, 0, labels=["back"])
    svg = graph_svg(g, [0, 1], max_states=20)
    assert len(ET.fromstring(svg).findall("{http://www.w3.org/2000/svg}g")) == 20
    assert "first states only" in svg


def test_widget_buttons_step_back_and_rerender():
    import ipywidgets  # noqa: F401 - in the test extra
    with fc.Explorer(philosophers(n=3)) as ex:
        w = ex.widget()
        assert [b.description for b in w.buttons] == [str(t) for t in ex.root.transitions]
        assert w.back_button.disabled and "State #0" in w.title.value
        w.buttons[0].click()
        assert w.node is ex.root.step(0) and not w.back_button.disabled
        w.step("phil1")
        w.step("phil2")
        assert w.buttons == [] and "deadlock violation" in w.view.value
        w.back_button.click()
        assert w.node is ex.root.step(0).step("phil1")
        assert [b.button_style for b in w.buttons if b.description.startswith("phil2")] == ["danger"]
        w.root_button.click()
        assert w.node is ex.root and w.buttons[0].button_style == "info"
        bundle = w._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle


# --------------------------------------------------------------------------- the notebook, in a real kernel


def test_the_example_notebook_runs_in_a_real_kernel():
    # The test extra installs these: a missing one must fail, not skip the real-kernel test.
    import ipykernel  # noqa: F401
    import ipywidgets  # noqa: F401
    import nbclient
    import nbformat

    nb = nbformat.read(EXAMPLES / "explore.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                                     resources={"metadata": {"path": str(EXAMPLES)}})
    probe = nbformat.v4.new_code_cell("print(os.getpid(), ex.root.snap.pid, len(ex.processes))")
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)  # raises CellExecutionError on any error
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
        kernel_pid, pgid, live = map(int, probe.outputs[0]["text"].split())
        assert kernel_pid != os.getpid() and live >= 4
        assert len(group_members(pgid)) >= live  # the explorer in the kernel is still alive
    # the kernel has shut down without ex.close(): its snapshot processes are gone
    assert not wait_for_group_end(pgid)
    deadline = time.monotonic() + 3
    while kernel_snapshots(kernel_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not kernel_snapshots(kernel_pid)

    def text(i):
        return "".join(o.get("text", "") for o in nb.cells[i].outputs if o["output_type"] == "stream")

    def data(i):
        return [o["data"] for o in nb.cells[i].outputs if o["output_type"] in ("execute_result", "display_data")]

    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    sources = {i: nb.cells[i].source for i in code}
    cell = {key: next(i for i in code if key in sources[i]) for key in (
        "root = ex.root", "s3 = s2.step", "print(s3.violations[0])", "s3.eval", "ex.graph_svg(current=s3)",
        "result = ex.run", "found = ex.goto", "w = ex.widget()", "w.step(", "ordered=True")}
    assert "<Node #0 depth 0 (initial); 3 enabled>" in data(cell["root = ex.root"])[0]["text/plain"]
    deadlock_view = data(cell["s3 = s2.step"])[0]
    assert "deadlock violation" in deadlock_view["text/html"] and "deadlock" in deadlock_view["text/plain"]
    assert text(cell["print(s3.violations[0])"]).startswith("deadlock violation after 3 steps: deadlock: no actor can move")
    assert "True True True" in text(cell["s3.eval"])
    assert "{'fork0': 'phil0', 'fork1': 'phil1', 'fork2': 'phil2'}" in text(cell["s3.eval"])
    assert "<svg" in data(cell["ex.graph_svg(current=s3)"])[0]["text/html"]
    result_view = data(cell["result = ex.run"])[0]
    assert "states=14, transitions=16" in result_view["text/plain"] and "deadlock violation" in result_view["text/html"]
    assert "True True" in text(cell["found = ex.goto"])
    assert "application/vnd.jupyter.widget-view+json" in data(cell["w = ex.widget()"])[0]
    assert "phil1: acquire fork1" in text(cell["w.step("]) and "phil0: acquire fork0" in text(cell["w.step("])
    assert "no violation" in data(cell["ordered=True"])[0]["text/html"]
