"""Shared fixtures: every test must leave no snapshot process and no zombie behind."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]  # tests/test_reports.py runs pytest on models to check what it shows

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


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


def snapshot_processes(owner: int | None = None) -> list[tuple[int, str]]:
    """Live snapshot processes of explorer ``owner`` (default: this process), and zombie children of this process.

    Snapshot processes carry ``FORKCHECK_OWNER=<explorer pid>`` in their environment, so
    checks run elsewhere on the machine at the same time are not counted.
    """
    found = []
    me = os.getpid()
    tag = f"FORKCHECK_OWNER={owner or me}".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = proc_stat(name)
        if fields is None:
            continue
        state, ppid = fields[0].decode(), int(fields[1])
        mine = False
        if "forkcheck._app.serve" in cmd:
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    mine = tag in f.read().split(b"\0")
            except OSError:
                continue
        if mine or (state == "Z" and ppid == me):
            found.append((int(name), f"{state} {cmd.strip() or '<zombie>'}"))
    return found


def wait_for_no_snapshots(timeout: float = 3.0, owner: int | None = None) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    left = snapshot_processes(owner)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = snapshot_processes(owner)
    return left


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Fail any test that leaves a snapshot process or a zombie behind."""
    before = {pid for pid, _ in snapshot_processes()}
    yield
    left = [p for p in wait_for_no_snapshots() if p[0] not in before]
    assert not left, f"processes left behind: {left}"
