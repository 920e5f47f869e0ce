"""Shared fixtures: every test must leave no snapshot process and no zombie behind."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # tests/test_reports.py runs pytest on models to check what it shows

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


# A suite started in the background by a non-interactive shell inherits SIGINT ignored, and every
# command it starts would too: the tests that press Ctrl-C would then test nothing.  A handler of
# our own is reset to the default in each child at exec, where an ignored signal stays ignored.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def without_sys_admin() -> list[str]:
    """The command prefix that runs a program without CAP_SYS_ADMIN (pagemap frame numbers then read 0).

    Skips the test, with the reason, when setpriv is missing or cannot drop the capability.
    """
    import shutil
    import subprocess

    prefix = ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--ambient-caps=-sys_admin"]
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot drop CAP_SYS_ADMIN to test the unprivileged path")
    probe = subprocess.run(prefix + [sys.executable, "-c", "pass"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop CAP_SYS_ADMIN here: {probe.stderr.decode(errors='replace').strip()}")
    return prefix


def proc_stat(pid: int | str) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, pgrp, ...), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _scan(owner: int | None) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """One pass over /proc: (snapshot processes of ``owner`` and zombie children of this process, Ray-backend processes).

    Snapshot processes carry ``FORKCHECK_OWNER=<explorer pid>`` in their environment, so checks run
    elsewhere on the machine at the same time are not counted.  So do the Ray backend's host process,
    the local cluster it starts (GCS, raylet, agents, workers) and its worker actors on any cluster
    (through their runtime_env).  Only processes whose command line names forkcheck or Ray have their
    environment read.
    """
    snapshots, ray = [], []
    me = os.getpid()
    tag = f"FORKCHECK_OWNER={owner or me}".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = proc_stat(name)
        if fields is None:
            continue
        state, ppid = fields[0].decode(), int(fields[1])
        serve = b"forkcheck._app.serve" in raw
        mine = False
        if state != "Z" and (serve or b"ray" in raw or b"forkcheck._check.distributed" in raw):
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    mine = tag in f.read().split(b"\0")
            except OSError:
                continue
        cmd = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        if (mine and serve) or (state == "Z" and ppid == me):
            snapshots.append((int(name), f"{state} {cmd or '<zombie>'}"))
        elif mine:
            ray.append((int(name), cmd))
    return snapshots, ray


def snapshot_processes(owner: int | None = None) -> list[tuple[int, str]]:
    """Live snapshot processes of explorer ``owner`` (default: this process), and zombie children of this process."""
    return _scan(owner)[0]


def ray_processes(owner: int | None = None) -> list[tuple[int, str]]:
    """Processes of the Ray backend started for explorer ``owner`` (default: this process), but snapshots."""
    return _scan(owner)[1]


def wait_for_no_ray_processes(timeout: float = 15.0) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    left = ray_processes()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = ray_processes()
    return left


def wait_for_no_snapshots(timeout: float = 3.0, owner: int | None = None) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    left = snapshot_processes(owner)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = snapshot_processes(owner)
    return left


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Fail any test that leaves a snapshot process, a zombie or a process of the Ray backend behind."""
    snapshots, ray = _scan(None)
    before, ray_before = {pid for pid, _ in snapshots}, {pid for pid, _ in ray}
    yield
    left = [p for p in wait_for_no_snapshots() if p[0] not in before]
    assert not left, f"processes left behind: {left}"
    if any(pid not in ray_before for pid, _ in ray_processes()):
        left = [p for p in wait_for_no_ray_processes() if p[0] not in ray_before]
        assert not left, f"Ray processes left behind: {left}"
