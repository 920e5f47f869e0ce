"""The Ray backend (docs/distributed.md): the same answers as a local check, faults, a private cluster.

Tests that need Ray run on one ``ray.cluster_utils.Cluster`` of two nodes (a
third joins for the node-removal test), each node with one CPU and a small
object store, and are marked slow: Ray's start-up takes seconds.  The
assembly, the options and the messages are tested without Ray.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import forkcheck as fc
from conftest import ray_processes
from dining_philosophers import philosophers
from models import two_phase_spec_bfs
from test_bounds import retry
from two_phase import two_phase

OBJECT_STORE = 80 * 2 ** 20


# --------------------------------------------------------------------------- without Ray


@pytest.mark.parametrize("kw, fragment", [
    ({"workers": 2}, "workers=2 needs backend='ray' (--ray on the command line)"),
    ({"ray_address": "10.0.0.1:6379"}, "ray_address='10.0.0.1:6379' needs backend='ray'"),
    ({"backend": "spark"}, "backend='spark' is not a backend; use 'local' (this machine) or 'ray'"),
    ({"backend": "ray", "workers": 0}, "workers=0: give a whole number >= 1"),
    ({"backend": "ray", "strategy": "random"}, "strategy='random' is not supported with backend='ray'"),
    ({"backend": "ray", "max_depth": 3}, "max_depth=3 is not supported with backend='ray'"),
    ({"backend": "ray", "max_states": 10}, "max_states=10 is not supported with backend='ray'"),
    ({"backend": "ray", "fingerprint": "pages"}, "fingerprint='pages' is not supported with backend='ray'"),
    ({"backend": "ray", "reduction": "por"}, "reduction='por' is not supported with backend='ray'"),
    ({"backend": "ray", "max_deviations": 0}, "max_deviations=0 is not supported with backend='ray'"),
])
def test_options_of_the_ray_backend_are_checked_once(kw, fragment):
    with pytest.raises(fc.UsageError, match="^" + fragment.replace("(", r"\(").replace(")", r"\)")):
        fc.CheckOptions(**kw)


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(fc.UsageError, match=r"pip install 'forkcheck\[ray\]'"):
        two_phase(n=2).check(backend="ray")


def test_an_asyncio_program_is_refused_before_ray_starts():
    import aio_models

    with pytest.raises(fc.UsageError, match=r"^backend='ray' does not run asyncio programs yet"):
        aio_models.lost_update.check(backend="ray")


def test_import_forkcheck_and_the_driver_load_no_ray():
    code = ("import sys, forkcheck, forkcheck._check.distributed.driver, forkcheck._check.distributed.host; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_ray_flag_does_not_take_the_target_for_an_address(capsys):
    from forkcheck import _cli

    assert _cli.main(["check", "--ray", "examples/two_phase.py"]) == 2
    assert "'examples/two_phase.py' looks like the TARGET, not the ADDRESS of --ray: write the TARGET before --ray, " \
        "or --ray=ADDRESS" in capsys.readouterr().err
    args = _cli.build_parser().parse_args(["check", "m.py", "--ray", "--workers", "3"])
    assert _cli._check_options(args, None) == fc.CheckOptions(backend="ray", workers=3)


def _dumps(states, edges, pending=(), count=1, constrained=None):
    """Shard dumps made by hand: ``states`` gid -> violation kinds, ``edges`` gid -> [(index, child gid)],
    ``constrained`` gid -> the name of the fc.constraint that cut it."""
    out = []
    for k in range(count):
        recs = []
        for gid in sorted(g for g in states if g % count == k):
            assert gid == k + count * len(recs)
            kinds = states[gid]
            attrs = ({"fingerprint": f"{gid:032x}", "violations": kinds, "enabled": [], "done": False, "labels": {}},
                     {"opaque": "", "faulty": False, "constrained": (constrained or {}).get(gid, "")})
            recs.append((bytes(16), -1, None, 0, attrs, [(kind, kind, f"{kind} here", "") for kind in kinds]))
        out.append({"index": k, "count": count, "states": recs, "pending": sorted(g for g in pending if g % count == k),
                    "edges": {u: [(i, "a", f"step {i}", "m.py:1", v, f"{v:032x}") for i, v in es]
                              for u, es in edges.items() if u % count == k}})
    return out


def test_the_assembly_numbers_states_breadth_first_whatever_order_they_were_found_in():
    from forkcheck._check.distributed.assemble import assemble

    # gid 3 was found first (a depth-first worker), but breadth first it is the last state.
    states = {0: [], 1: [], 2: [], 3: ["invariant"], 4: []}
    edges = {4: [(0, 0), (1, 2)], 0: [(0, 3)], 2: [(0, 1), (1, 3)], 1: []}
    a = assemble(_dumps(states, edges, count=2), root_gid=4)
    assert list(a.graph.nodes) == [0, 1, 2, 3, 4]
    assert [a.graph.nodes[s]["fingerprint"][-1] for s in range(5)] == ["4", "0", "2", "3", "1"]
    assert a.transitions == 5 and a.max_depth == 2 and a.lost == 0
    assert [s.label for s in a.trace_to(3)] == ["step 0", "step 0"]  # the shortest, through the first child
    assert a.found == {3: [("invariant", "invariant", "invariant here", "")]}


def test_the_assembly_counts_what_a_stopped_search_left():
    from forkcheck._check.distributed.assemble import assemble

    states = {0: [], 1: [], 2: []}  # 1 is claimed and pending; 2's parent (1) never reported: unreachable
    a = assemble(_dumps(states, {0: [(0, 1)]}, pending=[1]), root_gid=0)
    assert a.graph.number_of_nodes() == 2 and a.unexpanded == [1] and a.lost == 1


def test_the_assembly_counts_the_states_each_constraint_cut():
    from forkcheck._check.distributed.assemble import assemble

    states = {0: [], 1: [], 2: [], 3: []}
    a = assemble(_dumps(states, {0: [(0, 1), (1, 2), (2, 3)]}, constrained={1: "small", 3: "small", 2: "short"}),
                 root_gid=0)
    assert a.cut == {"small": 2, "short": 1} and a.unexpanded == []


def test_the_coordinator_gives_the_likely_infinite_hint_once_naming_what_bounds_a_ray_check():
    from forkcheck._check.distributed.host import Host

    host = Host(None, {"opts": fc.CheckOptions(backend="ray")})
    assert host.watch_depth(999, 998, 0, 0) == (0, 0) and not host.hint  # not a whole window yet
    assert host.watch_depth(1200, 500, 0, 0) == (1, 500) and not host.hint  # a wide graph: no hint
    assert host.watch_depth(3100, 2400, 1, 500) == (3, 2400) and host.hint.startswith(
        "the depth grew with nearly every new state (depth 2400 after 3100 states)")
    assert host.hint.endswith("bound it with fc.constraint(lambda: ...) in the setup function, or time_limit")


# --------------------------------------------------------------------------- on a Ray cluster


@pytest.fixture(scope="module")
def cluster():
    """Two nodes of one CPU each on this machine; every process of it ends with the module."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE,
                                                       "include_dashboard": False})
    c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        session = c.head_node.get_session_dir_path()
        c.shutdown()
        deadline = time.monotonic() + 20
        while (left := _processes_mentioning(session)) and time.monotonic() < deadline:
            time.sleep(0.2)
            _reap()
        _reap()
        assert not left, f"processes of the test cluster left behind: {left}"


def _reap() -> None:
    """Reap the exited children of this process: Ray's cluster utilities kill a node's processes without waiting."""
    from conftest import proc_stat

    for name in os.listdir("/proc"):
        fields = proc_stat(name) if name.isdigit() else None
        if fields is not None and fields[0] == b"Z" and int(fields[1]) == os.getpid():
            try:
                os.waitpid(int(name), os.WNOHANG)
            except ChildProcessError:
                pass


def _processes_mentioning(text: str) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    out.append(int(name))
        except (OSError, ValueError):
            continue
    return out


def _same_answers(ray_result, local_result):
    assert (ray_result.stats.states, ray_result.stats.transitions, ray_result.stats.max_depth) == \
        (local_result.stats.states, local_result.stats.transitions, local_result.stats.max_depth)
    # The very graph of a local breadth-first search: numbering, attributes, every transition.
    assert [dict(d) for _, d in ray_result.graph.nodes(data=True)] == \
        [dict(d) for _, d in local_result.graph.nodes(data=True)]
    assert sorted((u, v, tuple(d["labels"])) for u, v, d in ray_result.graph.edges(data=True)) == \
        sorted((u, v, tuple(d["labels"])) for u, v, d in local_result.graph.edges(data=True))
    assert [(v.kind, v.name, v.trace.token) for v in ray_result.violations] == \
        [(v.kind, v.name, v.trace.token) for v in local_result.violations]
    assert ray_result.complete == local_result.complete


@pytest.mark.slow
def test_two_phase_and_philosophers_give_the_answers_of_a_local_check(cluster):
    address = cluster.address
    r = two_phase(n=3).check(backend="ray", ray_address=address, workers=2)
    assert r.ok and r.complete and (r.stats.states, r.stats.transitions, r.stats.max_depth) == (288, 1145, 10)
    _same_answers(r, two_phase(n=3).check(strategy="bfs"))

    # A violation, the whole graph explored: the same counterexample as local BFS, which replays.
    r = philosophers().check(backend="ray", ray_address=address, workers=2, strategy="bfs", stop_on_violation=False)
    local = philosophers().check(strategy="bfs", stop_on_violation=False)
    _same_answers(r, local)
    (v,) = r.violations
    assert v.kind == "deadlock" and len(v.trace) == 3 and v.state is not None
    assert "phil0" in str(v.state.actors)
    replayed = fc.replay(philosophers(), v.trace.token)
    assert [s.label for s in replayed] == [s.label for s in v.trace] and replayed.violations

    # Stopping at the first violation: it is reported and replays; the rest is incomplete, and says so.
    r = philosophers().check(backend="ray", ray_address=address, workers=2)
    assert [v.kind for v in r.violations] == ["deadlock"]
    assert fc.replay(philosophers(), r.violations[0].trace.token).violations
    assert r.complete or "stopped at the first violation" in r.incomplete[0]

    r = philosophers(ordered=True).check(backend="ray", ray_address=address, workers=2)
    _same_answers(r, philosophers(ordered=True).check(strategy="bfs"))


@fc.model
def counter():
    state = {"seq": 0}

    async def tick():
        while True:
            state["seq"] += 1
            await fc.checkpoint()

    fc.spawn(tick)


@pytest.mark.slow
def test_constraints_liveness_loops_and_the_unbounded_hint_as_in_a_local_check(cluster):
    r = retry(bound=2).check(backend="ray", ray_address=cluster.address, workers=2)
    local = retry(bound=2).check()
    _same_answers(r, local)
    assert r.incomplete == local.incomplete and r.incomplete[0].startswith("constraint 'at most 2 in flight' cut ")

    # A liveness counterexample: the same lasso, and the state where its loop starts described.
    from test_liveness import lost_wakeup

    r = lost_wakeup().check(backend="ray", ray_address=cluster.address, workers=2, stop_on_violation=False)
    local = lost_wakeup().check(stop_on_violation=False)
    _same_answers(r, local)
    (v,) = r.violations
    assert v.kind == "liveness" and v.state is not None and v.state == local.violations[0].state

    # A state space without a bound: the hint comes once, in the progress and as a warning at the caller's line.
    hints: list[str] = []

    def progress(info):
        if info.get("hint") and not hints:
            hints.append(info["hint"])
            raise KeyboardInterrupt  # stops the check, which still gives its warnings

    import warnings

    with warnings.catch_warnings(record=True) as caught, pytest.raises(fc.Interrupted):
        warnings.simplefilter("always")
        counter.check(backend="ray", ray_address=cluster.address, workers=2, progress=progress, time_limit=600)
    assert len(hints) == 1
    (w,) = [w for w in caught if issubclass(w.category, fc.ForkcheckWarning)]
    assert w.category is fc.UnboundedWarning and w.filename == __file__
    assert str(w.message) == hints[0] and hints[0].startswith("the depth grew with nearly every new state (depth ")

    # A model that declares symmetric values: refused under symmetry, every state explored without it.
    with pytest.raises(fc.UsageError, match="declares fc.symmetric values, and backend='ray' does not reduce by "
                                            r"symmetry yet: pass symmetry=False \(--no-symmetry\)"):
        two_phase(n=2, symmetric=True).check(backend="ray", ray_address=cluster.address, workers=2)
    r = two_phase(n=2, symmetric=True).check(backend="ray", ray_address=cluster.address, workers=2, symmetry=False,
                                             stop_on_violation=False)
    _same_answers(r, two_phase(n=2, symmetric=True).check(symmetry=False, stop_on_violation=False))


@pytest.mark.slow
def test_the_command_line_checks_on_a_cluster(cluster):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "forkcheck", "check", "examples/dining_philosophers.py",
                           "--ray", cluster.address, "--workers", "2", "--keep-going", "--json", "-"],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    import json

    report = json.loads(proc.stdout)
    assert (report["stats"]["states"], report["stats"]["transitions"]) == (45, 111)
    assert [v["kind"] for v in report["violations"]] == ["deadlock"]
    assert "forkcheck replay examples/dining_philosophers.py fc1:" in report["violations"][0]["replay"]
    assert "Done. states=45, transitions=111, depth=9" in proc.stderr


@pytest.mark.slow
def test_two_phase_with_five_managers_matches_an_independent_search_of_the_spec(cluster):
    r = two_phase(n=5).check(backend="ray", ray_address=cluster.address, workers=2, determinism_checks=0)
    assert r.ok and r.complete
    assert (r.stats.states, r.stats.transitions, r.stats.max_depth) == two_phase_spec_bfs(5) == (8832, 58145, 16)


class _Once:
    """A progress callback that acts once, when the search has found ``at`` states; it keeps the last counts."""

    def __init__(self, at, action):
        self.at, self.action, self.done, self.last, self.seen = at, action, False, {}, 0

    def __call__(self, info):
        self.last = info
        if not self.done and info["states"] >= self.at:
            self.done = True
            self.seen = info["states"]
            self.action(info)


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_only_its_processes(cluster):
    kill = _Once(40, lambda info: os.kill(info["workers"][0]["pid"], signal.SIGKILL))
    # time_limit: were the dead worker's states never handed out again, the search would wait for them forever.
    r = two_phase(n=3).check(backend="ray", ray_address=cluster.address, workers=2, progress=kill, time_limit=900)
    assert kill.done and kill.seen < 288 and kill.last["deaths"] == 1
    assert r.ok and r.complete and (r.stats.states, r.stats.transitions, r.stats.max_depth) == (288, 1145, 10)


@pytest.mark.slow
def test_a_node_removed_mid_run_loses_only_its_workers(cluster):
    node = cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    try:
        remove = _Once(40, lambda info: cluster.remove_node(node))
        r = two_phase(n=3).check(backend="ray", ray_address=cluster.address, workers=3, progress=remove,
                                 time_limit=900)
    finally:
        if node in cluster.worker_nodes:
            cluster.remove_node(node)
        _reap()
    assert remove.done and remove.seen < 288 and remove.last["deaths"] >= 1
    assert r.ok and r.complete and (r.stats.states, r.stats.transitions, r.stats.max_depth) == (288, 1145, 10)


@pytest.mark.slow
def test_an_interrupted_check_returns_what_it_explored(cluster):
    def interrupt(info):
        raise KeyboardInterrupt

    stop = _Once(40, interrupt)
    with pytest.raises(fc.Interrupted) as e:
        two_phase(n=3).check(backend="ray", ray_address=cluster.address, workers=2, progress=stop)
    r = e.value.result
    assert e.value.signal_name == "SIGINT" and not r.complete and "interrupted by SIGINT" in r.incomplete[0]
    assert 40 <= r.stats.states < 288 and r.graph.number_of_nodes() == r.stats.states


@pytest.mark.slow
def test_a_shard_killed_mid_run_stops_the_check_with_an_error(cluster):
    kill = _Once(40, lambda info: os.kill(info["shard_pids"][0], signal.SIGKILL))
    with pytest.raises(fc.ForkcheckError, match=r"^shard 0 of the visited set \(2 shards, on the head node\) died"):
        two_phase(n=3).check(backend="ray", ray_address=cluster.address, workers=2, progress=kill)
    assert kill.done


# --------------------------------------------------------------------------- a private local cluster


def _listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket ``pid`` listens on, as its own network namespace sees them."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for table, size in (("tcp", 4), ("tcp6", 16)):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                    continue
                hexaddr, port = cols[1].split(":")
                raw = bytes.fromhex(hexaddr)
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))  # each 32-bit word is host-endian
                out.append((socket.inet_ntop(socket.AF_INET if size == 4 else socket.AF_INET6, raw), int(port, 16)))
    return out


@pytest.mark.slow
def test_a_local_cluster_listens_on_loopback_only():
    pytest.importorskip("ray")
    seen: dict[int, tuple] = {}

    def look(info):
        for pid, cmd in ray_processes():
            try:
                ns = os.readlink(f"/proc/{pid}/ns/net")
                with open(f"/proc/{pid}/net/dev") as f:
                    interfaces = [ln.split(":")[0].strip() for ln in f.readlines()[2:]]
                seen[pid] = (cmd, ns, interfaces, _listening(pid))
            except OSError:
                continue  # it ended meanwhile

    r = philosophers(ordered=True).check(backend="ray", workers=2, progress=_Once(1, look))
    assert r.ok and r.stats.states == 42
    ours = os.readlink("/proc/self/ns/net")
    assert any("gcs_server" in cmd for cmd, *_ in seen.values()) and any("raylet" in cmd for cmd, *_ in seen.values())
    listeners = [(cmd, sockets) for cmd, ns, interfaces, sockets in seen.values() if sockets]
    assert listeners, "the cluster was seen listening nowhere"
    loopback = ("127.0.0.1", "::1")
    for cmd, ns, interfaces, sockets in seen.values():
        exposed = [a for a, _ in sockets if a not in loopback]
        if exposed:  # bound to every address: only inside a namespace whose one interface is loopback
            assert ns != ours and interfaces == ["lo"], (cmd, sockets, interfaces)


@pytest.mark.slow
def test_a_killed_caller_leaves_no_ray_process_and_no_snapshot_behind(tmp_path):
    pytest.importorskip("ray")
    from conftest import snapshot_processes

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "caller.py"
    script.write_text(  # this checkout's forkcheck, not whichever one is installed
        "import sys\n"
        f"sys.path[:0] = [{root!r}, {os.path.join(root, 'examples')!r}]\n"
        "from two_phase import two_phase\n"
        "two_phase(n=4).check(backend='ray', workers=2, progress=lambda info: print(info['states'], flush=True))\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the search is under way: the cluster, the workers and their snapshots exist
            if int(line) > 20:
                break
        assert ray_processes(proc.pid) and snapshot_processes(proc.pid)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 60
        while (ray_processes(proc.pid) or snapshot_processes(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not ray_processes(proc.pid) and not snapshot_processes(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
