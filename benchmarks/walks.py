"""The two fingerprint walks on the running Python: time, and pages a snapshot's report copies.

The figures of ``forkcheck bench`` section 5 (``walk_times``, ``written_pages_by_phase``), for
one interpreter, so that the Pythons the C walk is built for can be compared in one sitting:

    for py in python3.11 python3.12 python3.13; do $py benchmarks/walks.py; done

(each with forkcheck installed or on ``PYTHONPATH``; page counts need CAP_SYS_ADMIN).
"""

from __future__ import annotations

import os
import platform
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

from two_phase import two_phase  # noqa: E402

from forkcheck._app import fingerprint as _fingerprint  # noqa: E402
from forkcheck._bench import _run_worker, walk_times  # noqa: E402


def main() -> None:
    print(f"Python {platform.python_version()}, C walk built: {_fingerprint._cfingerprint is not None}, "
          f"load {os.getloadavg()[0]:.1f}")
    w = walk_times(two_phase(n=3))
    c = "not built" if w["c_seconds"] is None else f"{w['c_seconds'] * 1e6:.0f} us"
    print(f"  fingerprint of the initial state of two_phase(n=3): C walk {c}, "
          f"Python walk {w['python_seconds'] * 1e6:.0f} us")
    p = _run_worker("phases", root_env=True)["phases"]
    if p is None:
        print("  pages written per phase: not measured (frame numbers need CAP_SYS_ADMIN)")
    else:
        walk = "C walk" if p["c_walk"] else "Python walk (the C walk is not built)"
        print(f"  pages a child of lattice(1 MiB) copies: {p['fork']} after fork() alone, {p['transition']} with "
              f"its transition, {p['report']} with its report ({walk}), {p['report_python_walk']} with the "
              "Python walk instead")


if __name__ == "__main__":
    main()
