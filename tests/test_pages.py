"""Page fingerprints (forkcheck/_pages.py): sound, incremental, and the same without privileges.

Everything here runs real snapshot processes and reads their real pagemaps:
the properties under test are the kernel's as much as forkcheck's.  The
explorer integration (``check(fingerprint="pages")``) is not assumed: the
small breadth-first driver below plays the explorer.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

import forkcheck as fc
from conftest import without_sys_admin
from forkcheck._errors import InternalError
from forkcheck._model import as_model
from forkcheck._check.pages import (
    _EXCLUSIVE,
    _PFN,
    _PRESENT,
    _SWAPPED,
    PAGE,
    PageFingerprinter,
    _changed_lanes,
    _maps,
    _static_mappings,
    _word_runs,
)
from forkcheck._check.snapshots import SnapshotTree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from pages import explore_pages  # noqa: E402 - the benchmark's driver: one search, measured and tested

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- models


@fc.model
def scribbler(pages=64, targets=(0, 5, 40)):
    """A 256 KiB buffer (its own mapping) and one actor bumping a byte of one of a few pages."""
    buf = bytearray(b"\x01" * (pages * PAGE))  # non-zero: every page present in the root

    async def writer():
        while True:
            k = await fc.choose(list(targets))
            buf[k * PAGE + 123] = (buf[k * PAGE + 123] + 1) % 251

    fc.spawn(writer)
    return buf


@fc.model
def mapper():
    """A transition that maps a new 1 MiB private mapping and writes it, one that unmaps it."""
    import mmap

    held = []

    async def grow():
        await fc.checkpoint()
        held.append(mmap.mmap(-1, 1 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS))
        held[-1][5000:5001] = b"\x07"
        await fc.checkpoint()
        held.pop().close()
        await fc.checkpoint()

    fc.spawn(grow)
    return held


def _buffer_span(view) -> tuple[int, int]:
    """(address, length) of the model's buffer; runs in a throwaway fork of a snapshot."""
    import ctypes

    return ctypes.addressof((ctypes.c_char * len(view)).from_buffer(view)), len(view)


# --------------------------------------------------------------------------- the driver


@dataclass
class Explored:
    states: int  # distinct state fingerprints among the snapshots visited
    page_states: int  # distinct page fingerprints
    transitions: int
    clashes: int  # page fingerprints shared by snapshots of different state fingerprints
    frames: bool
    stats: object = None
    extra: dict = field(default_factory=dict)


async def explore(model, max_depth, **options) -> Explored:
    """The benchmark's breadth-first search by page fingerprint (benchmarks/pages.py), as tested data.

    A snapshot is expanded as in ``check()``; every snapshot's state fingerprint
    is kept next to its page fingerprint, to catch a merge of two different states.
    """
    found = await explore_pages(model, max_depth, **options)
    return Explored(found["states"], found["page_states"], found["transitions"], found["clashes"],
                    bool(found["frames"]), found["stats"])


def run(model, max_depth, **options) -> Explored:
    return trio.run(functools.partial(explore, model, max_depth, **options))


# --------------------------------------------------------------------------- soundness and precision

SOUNDNESS_CASES = [
    ("two_phase", lambda: __import__("two_phase").two_phase(n=2), 3),
    ("philosophers", lambda: __import__("dining_philosophers").philosophers(n=2), 4),
    ("mutex.broken", lambda: __import__("mutex").broken(), 4),
    ("scribbler", lambda: scribbler(pages=8), 2),
]


@pytest.mark.parametrize("name,make,depth", SOUNDNESS_CASES, ids=[c[0] for c in SOUNDNESS_CASES])
def test_pages_never_merge_what_the_state_fingerprint_keeps_apart(name, make, depth):
    model = make()
    pages = run(model, depth)
    assert pages.clashes == 0, "two snapshots with different state fingerprints got the same page fingerprint"
    state = model.check(strategy="bfs", max_depth=depth, stop_on_violation=False, deadlock=False)
    # The page search visits every path to the same depth, so it meets every state...
    assert pages.states == state.stats.states
    # ...and keeps apart at least the states the state fingerprint keeps apart.
    assert pages.page_states >= state.stats.states
    assert pages.stats.fingerprints == pages.transitions  # every child incrementally from its parent
    assert pages.stats.full_reads == 1  # the root only


def test_a_change_of_one_byte_changes_the_page_fingerprint():
    """Each increment of the buffer is a new state for both fingerprints (no merge is missed the other way)."""
    r = run(scribbler(targets=(7,)), 4)
    assert r.clashes == 0
    assert r.states == r.page_states == 5 and r.transitions == 4


# --------------------------------------------------------------------------- writes are always seen


def _pagemap_of_buffer(snap, span):
    addr, length = span
    first, count = addr // PAGE, length // PAGE
    with open(f"/proc/{snap.pid}/pagemap", "rb", buffering=0) as f:
        raw = os.pread(f.fileno(), count * 8, first * 8)
    return [int.from_bytes(raw[8 * i:8 * i + 8], "little") for i in range(count)], first


async def _written_page_checks():
    """What the kernel shows of a child that wrote one page of a 64-page buffer."""
    tree = SnapshotTree(as_model(scribbler()), huge_pages=False)  # pages mode runs on 4 KiB pages
    pages = PageFingerprinter(0)
    try:
        root = await tree.start()
        await pages.calibrate(tree, root)
        span = await tree.eval(root, _buffer_span)
        before, first = _pagemap_of_buffer(root, span)
        # A buffer that does not start on a page (glibc's dynamic mmap threshold may put it in the
        # heap) shares its first page with other objects, which the child may write: not ours.
        partial = {0} if span[0] % PAGE else set()
        out = []
        for i, target in enumerate((0, 5, 40)):
            child = await tree.step(root, i)
            await pages._wait_stopped(child.pid)  # its memory is still only once it is blocked in recv
            after, _ = _pagemap_of_buffer(child, span)
            # The written byte sits at offset 123 of page `target` of the buffer
            # (the buffer is not page aligned: find the page that holds it).
            written = (span[0] + target * PAGE + 123) // PAGE - first
            out.append((written, before, after, partial))
            tree.release(child)
        return out, pages.frames_visible
    finally:
        tree.close()


def written_page_report() -> dict:
    """The facts test_child_writes_get_a_new_frame_and_the_exclusive_bit checks (also run unprivileged)."""
    results, frames_visible = trio.run(_written_page_checks)
    facts = {"frames_visible": bool(frames_visible), "cases": []}
    for written, before, after, partial in results:
        others = [k for k in range(len(after)) if k != written and k not in partial and after[k] & _PRESENT]
        facts["cases"].append({
            "written_exclusive": bool(after[written] & _EXCLUSIVE),
            "written_new_frame": (after[written] & _PFN) != (before[written] & _PFN),
            "others_shared": all(not after[k] & _EXCLUSIVE for k in others),
            "others_same_frame": all((after[k] & _PFN) == (before[k] & _PFN) for k in others),
            "others": len(others),
        })
    return facts


def test_child_writes_get_a_new_frame_and_the_exclusive_bit():
    facts = written_page_report()
    for case in facts["cases"]:
        assert case["written_exclusive"], "a page the child wrote is not exclusively mapped"
        assert case["others_shared"], "a page the child did not write is exclusively mapped"
        assert case["others"] >= 60
        if facts["frames_visible"]:
            assert case["written_new_frame"] and case["others_same_frame"]


@pytest.mark.parametrize("use_frames", [None, False], ids=["frames", "exclusive-bit-only"])
def test_kept_hashes_are_never_stale_for_the_model_memory(use_frames):
    """Every kept hash is checked against a full read of the child.

    Pages whose kept hash differs from their contents are only ever pages the
    child did not write (the parent's request handler wrote them before the
    fork), and never pages of the model's buffer.
    """

    async def main():
        tree = SnapshotTree(as_model(scribbler()), huge_pages=False)  # pages mode runs on 4 KiB pages
        pages = PageFingerprinter(0, use_frames=use_frames, verify=True)
        try:
            root = await tree.start()
            await pages.calibrate(tree, root)
            span = await tree.eval(root, _buffer_span)
            await pages.fingerprint(root, None)
            # The root's children, then the children of one of them: writes on
            # top of writes, to pages the parent had written too.
            parent = root
            for _ in range(2):
                children = []
                for i in range(len(parent.report.transitions)):
                    child = await tree.step(parent, i)
                    await pages.fingerprint(child, parent)
                    children.append(child)
                parent = children[1]
            return span, pages.stats
        finally:
            tree.close()

    (addr, length), stats = trio.run(main)
    assert stats.fingerprints == 6 and stats.verified == 7  # the root is verified too
    lo, hi = addr // PAGE * PAGE, addr + length
    for pid, page, mapping, exclusive in stats.mismatches:
        assert not exclusive, f"a page the child wrote kept a stale hash: {page:#x} in {mapping!r}"
        assert not lo <= page < hi, f"a page of the model's buffer kept a stale hash: {page:#x}"
    # The handler's pages are few: a handful per child.
    assert len(stats.mismatches) <= 40 * stats.verified


def test_new_and_removed_mappings():
    async def main():
        tree = SnapshotTree(as_model(mapper()), huge_pages=False)  # pages mode runs on 4 KiB pages
        pages = PageFingerprinter(0, verify=True)
        try:
            root = await tree.start()
            await pages.calibrate(tree, root)
            keys = [await pages.fingerprint(root, None)]
            maps = [{(s, e) for s, e, _ in _maps(root.pid)}]
            snap = root
            while snap.report.transitions:
                child = await tree.step(snap, 0)
                keys.append(await pages.fingerprint(child, snap))
                maps.append({(s, e) for s, e, _ in _maps(child.pid)})
                if snap is not root:
                    tree.release(snap)
                snap = child
            return keys, maps, pages.stats
        finally:
            tree.close()

    keys, maps, stats = trio.run(main)
    assert len(keys) == 4 and len(set(keys)) == 4
    added = maps[1] - maps[0]
    big = [span for span in added if (span[1] - span[0]) * PAGE == 1 << 20]
    assert big, "the 1 MiB mapping does not show"
    assert not any(span in maps[2] for span in big), "the 1 MiB mapping outlived its munmap"
    assert all(not exclusive for *_, exclusive in stats.mismatches)
    new_pages = {p for s, e in added for p in range(s * PAGE, e * PAGE, PAGE)}
    assert not any(page in new_pages for _, page, _, _ in stats.mismatches)


# --------------------------------------------------------------------------- never read a running process


def test_a_running_process_is_never_read():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    waiting = subprocess.Popen([sys.executable, "-c", "import socket; a, b = socket.socketpair(); a.recv(1)"])
    try:
        pages = PageFingerprinter(stop_timeout=0.5)

        async def wait(pid):
            await pages._wait_stopped(pid)

        with pytest.raises(InternalError, match="did not block in recv"):
            trio.run(wait, busy.pid)
        for _ in range(50):  # the second interpreter needs a moment to reach recv
            try:
                trio.run(wait, waiting.pid)
                break
            except InternalError:
                continue
        else:
            pytest.fail("a process blocked in recv was not recognised as stopped")
    finally:
        for p in (busy, waiting):
            p.kill()
            p.wait()


def test_a_snapshot_killed_after_its_report_gets_a_key_of_its_own():
    async def main():
        tree = SnapshotTree(as_model(__import__("mutex").peterson()), huge_pages=False)  # pages mode runs on 4 KiB pages
        pages = PageFingerprinter(0)
        try:
            root = await tree.start()
            await pages.calibrate(tree, root)
            await pages.fingerprint(root, None)
            child = await tree.step(root, 0)
            os.kill(child.pid, signal.SIGKILL)
            while True:  # until it is gone (its parent ignores SIGCHLD: no zombie lingers)
                try:
                    with open(f"/proc/{child.pid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                            break
                except FileNotFoundError:
                    break
                await trio.sleep(0.01)
            return await pages.fingerprint(child, root), child.report.fingerprint
        finally:
            tree.close()

    key, state = trio.run(main)
    assert key == b"gone:" + state  # never equal to a 16-byte page fingerprint


def test_fingerprint_before_calibrate_is_an_error():
    with pytest.raises(InternalError, match="before calibrate"):
        trio.run(PageFingerprinter().fingerprint, object(), None)


# --------------------------------------------------------------------------- noise


def test_static_noise_masks_stay_out_of_the_heap():
    async def main(noise):
        tree = SnapshotTree(as_model(__import__("two_phase").two_phase(n=2)), huge_pages=False)  # pages mode runs on 4 KiB pages
        pages = PageFingerprinter(2, noise=noise)
        try:
            root = await tree.start()
            await pages.calibrate(tree, root)
            static = _static_mappings(root.pid)
            named = {(s, e): n for s, e, n in _maps(root.pid)}
            return pages, static, named
        finally:
            tree.close()

    pages, static, named = trio.run(main, "static")
    assert pages.stats.calibration_pairs == 2
    assert all(any(s * PAGE <= addr < e * PAGE for s, e in static) for addr in pages.masked_runs)
    assert all(named[sp] not in (b"", b"[heap]") for sp in static)
    everywhere, _, named = trio.run(main, "all")
    heap = [sp for sp, n in named.items() if n in (b"", b"[heap]")]
    assert any(any(s * PAGE <= addr < e * PAGE for s, e in heap) for addr in everywhere.masked_runs)
    assert everywhere.stats.masked_words > pages.stats.masked_words


def test_masked_words_do_not_change_a_page_hash():
    pages = PageFingerprinter()
    page = bytearray(os.urandom(PAGE))
    addr = 0x7F0000000000
    pages._masks[addr] = _word_runs({8, 16, 4088})
    h = pages._page_hash(addr, bytes(page))
    page[8:24] = b"\xff" * 16
    page[4088:4096] = b"\x00" * 8
    assert pages._page_hash(addr, bytes(page)) == h
    page[24] ^= 1
    assert pages._page_hash(addr, bytes(page)) != h
    assert pages._page_hash(addr + PAGE, bytes(page)) != pages._page_hash(addr, bytes(page))  # address is hashed
    assert pages._page_hash(addr, bytes(PAGE)) == 0  # zero page == absent page


def test_changed_lanes_from_pagemap_entries():
    def entries(*values):
        return b"".join(v.to_bytes(8, "little") for v in values)

    shared, excl, gone, swapped = _PRESENT | 1000, _PRESENT | _EXCLUSIVE | 1001, 0, _SWAPPED | 77
    parent = entries(*([_PRESENT | 1000] * 12))
    child = entries(shared, excl, gone, swapped, _PRESENT | 2000, *([shared] * 7))
    assert _changed_lanes(child, parent, frames=True) == [1, 2, 3, 4]
    assert _changed_lanes(child, parent, frames=False) == [1, 2, 3]  # no frame numbers to compare
    assert _changed_lanes(child[:32], parent[:32], frames=True) == [1, 2, 3]  # the small-region path
    assert _changed_lanes(parent, parent, frames=True) == []


# --------------------------------------------------------------------------- without CAP_SYS_ADMIN

_CHILD = textwrap.dedent("""
    import json, sys
    sys.path[:0] = {paths!r}
    import trio, test_pages
    from two_phase import two_phase
    r = test_pages.run(two_phase(n=2), 2)
    out = {{"states": r.states, "page_states": r.page_states, "transitions": r.transitions,
           "clashes": r.clashes, "frames": r.frames, "written": test_pages.written_page_report()}}
    print(json.dumps(out))
""")


def test_unprivileged_gives_the_same_results():
    prefix = without_sys_admin()
    paths = [str(ROOT / "tests"), str(ROOT / "examples"), str(ROOT)]
    proc = subprocess.run(prefix + [sys.executable, "-c", _CHILD.format(paths=paths)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert theirs["frames"] is False and theirs["written"]["frames_visible"] is False
    for case in theirs["written"]["cases"]:
        assert case["written_exclusive"] and case["others_shared"]
    mine = run(__import__("two_phase").two_phase(n=2), 2)
    assert (theirs["states"], theirs["page_states"], theirs["transitions"], theirs["clashes"]) == \
        (mine.states, mine.page_states, mine.transitions, 0)
