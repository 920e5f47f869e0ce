"""Huge pages: the root's heap is collapsed after setup, so that forks of a big heap stay cheap."""

import pytest
import trio

import forkcheck as fc
from forkcheck._app.hugepages import root_env
from forkcheck._model import as_model
from forkcheck._check.snapshots import SnapshotTree

THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def thp_available() -> bool:
    try:
        with open(THP) as f:
            return "[never]" not in f.read()
    except OSError:
        return False


needs_thp = pytest.mark.skipif(not thp_available(), reason="transparent huge pages are off or absent on this kernel")

class Heap:
    """Many small objects, like a real heap; kept out of the fingerprint walk (it never changes)."""

    def __init__(self, mib: int) -> None:
        self.objects = [i.to_bytes(8, "little") * 4 for i in range(mib * 2 ** 20 // 72)]

    def __fc_state__(self):
        return "heap"


HEAP = None


@fc.model
def heap_model(mib=64):
    global HEAP
    HEAP = Heap(mib)

    async def a():
        await fc.checkpoint()

    fc.spawn(a)


def rollup_kib(pid: int, *fields: str) -> int:
    """The sum of ``fields`` of /proc/PID/smaps_rollup, in KiB."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in fields:
                total += int(rest.split()[0])
    return total


async def _root_huge_kib(huge_pages: bool) -> tuple[int, int]:
    """The root's anonymous memory on huge pages, and its child's private memory (KiB)."""
    tree = SnapshotTree(as_model(heap_model(mib=64)), huge_pages=huge_pages)
    try:
        root = await tree.start()
        child = await tree.step(root, 0)
        return rollup_kib(root.pid, "AnonHugePages"), rollup_kib(child.pid, "Private_Clean", "Private_Dirty")
    finally:
        tree.close()


@needs_thp
def test_the_root_heap_is_on_huge_pages_and_its_children_share_them():
    root, child_private = trio.run(_root_huge_kib, True)
    # Most of the 64 MiB heap (huge pages are best effort: a fragmented machine may lack a few).
    assert root >= 32 * 1024, root
    # A child writing into a huge page splits the mapping in the child and copies 4 KiB: it keeps
    # sharing the rest, and owns a few MiB at most, not the 2 MiB pages it wrote into.
    assert child_private < 8 * 1024, child_private


def test_without_huge_pages_the_heap_stays_on_small_pages():
    root, _ = trio.run(_root_huge_kib, False)
    assert root < 8 * 1024, root


def test_root_env_keeps_the_users_settings():
    env = root_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0", "PYTHONMALLOC": "debug"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert env["PYTHONMALLOC"] == "debug"
    assert root_env({})["PYTHONMALLOC"] == "malloc"


@pytest.mark.parametrize("huge_pages", [True, False])
def test_huge_pages_change_no_result(huge_pages):
    from two_phase import two_phase

    r = two_phase(n=2).check(huge_pages=huge_pages)
    assert (r.stats.states, r.stats.transitions) == (56, 153)


def test_pages_mode_turns_huge_pages_off():
    from forkcheck._check.options import CheckOptions

    assert CheckOptions.parse(fingerprint="pages").uses_huge_pages is False
    assert CheckOptions.parse().uses_huge_pages is True


def test_the_root_allocator_and_the_users_choice(monkeypatch):
    """The root runs on glibc's malloc with the huge-page tunable, unless the user chose an allocator."""
    import os

    async def root_env_of(huge_pages: bool) -> tuple:
        tree = SnapshotTree(as_model(heap_model(mib=1)), huge_pages=huge_pages)
        try:
            root = await tree.start()
            return await tree.eval(root, lambda view: (os.environ.get("PYTHONMALLOC"), os.environ.get("GLIBC_TUNABLES")))
        finally:
            tree.close()

    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert trio.run(root_env_of, True) == ("malloc", "glibc.malloc.hugetlb=1")
    assert trio.run(root_env_of, False) == (None, None)
    monkeypatch.setenv("PYTHONMALLOC", "pymalloc")
    assert trio.run(root_env_of, True) == ("pymalloc", "glibc.malloc.hugetlb=1")


_UNPRIVILEGED = """
import json, sys
sys.path[:0] = {paths}
import trio
import test_hugepages
print(json.dumps(trio.run(test_hugepages._root_huge_kib, True)))
"""


@needs_thp
def test_huge_pages_need_no_privilege():
    """MADV_COLLAPSE and the malloc tunable work without CAP_SYS_ADMIN: the heap is on huge pages all the same."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from conftest import without_sys_admin

    here = Path(__file__).resolve().parent
    paths = [str(here), str(here.parent)]
    proc = subprocess.run(without_sys_admin() + [sys.executable, "-c", _UNPRIVILEGED.format(paths=paths)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    root, child_private = json.loads(proc.stdout.strip().splitlines()[-1])
    assert root >= 32 * 1024 and child_private < 8 * 1024, (root, child_private)
