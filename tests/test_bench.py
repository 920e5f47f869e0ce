"""`forkcheck bench --smoke` through the real command: tables, bench.json, plots, no process left behind."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import wait_for_no_snapshots

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    out = tmp_path / "bench"
    proc = subprocess.Popen([sys.executable, "-m", "forkcheck", "bench", "--smoke", "--no-spin", "--out", str(out)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert not wait_for_no_snapshots(owner=proc.pid)
    assert "os.getloadavg()" in stdout and "floor Python" in stdout

    data = json.loads((out / "bench.json").read_text())
    assert {"mode", "config", "machine", "floors", "snapshots", "scaling", "spin", "cow", "seconds", "plots"} <= set(data)
    assert data["mode"] == "smoke" and data["spin"] == {"skipped": "--no-spin"}
    long_path = data["long_path"]  # section 6: the same states with and without rebuilding deep snapshots
    assert [r["states"] for r in long_path["runs"].values()] == [80, 80] and len(long_path["floor_seconds"]) == 2
    assert "## 6. A long path" in stdout
    per = data["transitions"]  # section 0: two_phase DFS per transition, over the node floor before and after
    assert [r["jobs"] for r in per["runs"]] == [1, 2] and {r["states"] for r in per["runs"]} == {56}
    assert per["floor_before_seconds"] > 0 and per["floor_after_seconds"] > 0
    assert per["floor_seconds"] == (per["floor_before_seconds"] + per["floor_after_seconds"]) / 2
    assert all(r["x_floor"] == r["seconds_per_transition"] / per["floor_seconds"] > 0 for r in per["runs"])
    assert "## 0. Per transition against the fork floor" in stdout
    assert {"cores", "kernel", "python", "loadavg_start", "loadavg_end"} <= set(data["machine"])
    floor = data["floors"][0]
    assert floor["heap_mib"] == 1 and floor["python_floor_seconds"] > 0
    assert floor["c_floor_seconds"] is None or floor["c_floor_seconds"] > 0
    rows = {r["mode"]: r for r in data["snapshots"]}
    assert set(rows) == {"fork", "replay", "deepcopy", "pickle"}
    for mode, r in rows.items():
        assert {"states", "transitions", "trans_per_s", "memory_bytes", "x_py_floor", "heap_mib", "depth"} <= set(r)
        assert r["trans_per_s"] > 0
    # Every strategy explores the same graph: 2*depth+1 states, 4*depth-2 transitions (the copy baselines may
    # stop at their time budget on a very slow machine, so only forkcheck's counts are exact).
    for mode in ("fork", "replay"):
        assert (rows[mode]["states"], rows[mode]["transitions"]) == (21, 38)
        assert rows[mode]["private_bytes"] is None or rows[mode]["private_bytes"] > 0
    for mode in ("deepcopy", "pickle"):
        assert rows[mode]["states"] <= 21 and (rows[mode]["states"] == 21) == rows[mode]["complete"]
    busy = {r["mode"]: r for r in data["busy"]}  # the lattice with about 1 ms of Python per transition
    assert set(busy) == {"fork-busy", "replay-busy"} and "busy lattice" in stdout
    assert all((r["states"], r["transitions"], r["depth"]) == (21, 38, 10) and r["work_seconds"] > 0
               for r in busy.values())
    assert busy["fork-busy"]["fork_speedup"] == busy["replay-busy"]["run_seconds"] / busy["fork-busy"]["run_seconds"]

    cow = data["cow"]
    assert cow["floors"]["os_fork_seconds"] > 0 and cow["floors"]["libc_fork_seconds"] > 0
    assert set(cow["floors"]["chain_libc_fork_seconds"]) == {"0", "10", "50"}
    assert set(cow["floors"]["huge_libc_fork_seconds"]) == {"1", "4"}
    assert all(t > 0 for t in cow["floors"]["huge_libc_fork_seconds"].values())
    assert {(r["huge_pages"], r["heap_mib"]) for r in cow["heap"]} == {(h, m) for h in (True, False) for m in (1, 4)}
    assert all(r["states"] == 21 and r["seconds_per_transition"] > 0 for r in cow["heap"])
    assert [r["jobs"] for r in cow["two_phase"]] == [1, 2]
    assert {r["states"] for r in cow["two_phase"]} == {56}
    assert len(cow["fan"]) == 4
    for r in cow["fan"]:  # the root and its 4 children, all sharing most of their pages
        assert r["snapshots"] == 5 and 0 < r["private_bytes"] < r["logical_bytes"] and 0 < r["sharing"] < 1
    walks = cow["walk_times"]
    assert walks["python_seconds"] > 0
    if walks["c_seconds"] is not None:
        assert 0 < walks["c_seconds"] < walks["python_seconds"]
    floor = cow["child_memory_floor"]
    assert floor["processes"] == 5 and 0 < floor["private_per_process"] and 0 < floor["sharing"] < 1
    if cow["phases"] is not None:  # frame numbers are visible (CAP_SYS_ADMIN)
        assert 0 < cow["phases"]["fork"] < cow["phases"]["transition"] < cow["phases"]["report"]
        if cow["phases"]["c_walk"]:  # the C walk reads the state without copying its pages
            assert cow["phases"]["report"] < cow["phases"]["report_python_walk"]
        assert "5. Cheap snapshots" in stdout

    if importlib.util.find_spec("matplotlib") is not None:
        assert data["plots"] and all((out / name).stat().st_size > 1000 for name in data["plots"])


def test_bench_help():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "forkcheck", "bench", "--help"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--no-spin" in proc.stdout and "--only" in proc.stdout


def test_node_fork_floor_leaves_no_process():
    """The issue 19 floor: a positive mean, and its node process and children all gone afterwards."""
    from forkcheck._bench import node_fork_floor

    def children() -> set[str]:
        return {c for t in Path("/proc/self/task").iterdir() for c in (t / "children").read_text().split()}

    before = children()
    assert 0 < node_fork_floor(20) < 1.0
    assert children() <= before


def test_pages_per_phase_without_frame_numbers_says_so():
    """Without CAP_SYS_ADMIN frame numbers read 0: the phase count is not measured, rather than wrong."""
    from conftest import without_sys_admin

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(without_sys_admin() + [sys.executable, "-m", "forkcheck._bench", "--worker", "phases"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"phases": None}
