"""The Ray side of a distributed check: ``python -m forkcheck._check.distributed.host FD``.

The explorer that asked for the check (``driver.py``, in the caller's
process) starts this program with one end of a socket pair and never imports
Ray itself.  This process is the Ray driver: it starts a private local
cluster (in a network namespace with loopback only, ``cluster.py``) or joins
the one at ``ray_address``, places the visited-set shards on its own node
and the workers across the cluster, and coordinates them:

* **termination**: every shard reports how many states it created and
  finished; the search is over when nothing is pending and the counters read
  the same in two rounds in a row (a state is pending from the moment it is
  claimed until its expansion is recorded at its shard, and every message that
  can create work is sent while such a state is pending, so the counters
  cannot read still while work is in flight);
* **balance**: when a worker is idle and no state is open, the busiest
  worker is asked to give states back to their shards;
* **faults**: a worker whose actor dies (its process killed, its node
  removed) is reported to every shard, which opens the states it held: they
  are rebuilt by path elsewhere.  A shard that dies takes part of the visited
  set with it: the check stops with an error, since no count would be exact.

Messages on the socket (``_protocol`` framing, pickled tuples): from the
explorer ``("check", request)``, ``("stop",)``, ``("describe", [(path, fp)])``,
``("close",)``; to it ``("started",)`` (every worker's root is up), ``("progress", counts)``, ``("explored", data)``,
``("described", descriptions)``, ``("error", (class, message, notes))``.
"""

from __future__ import annotations

import ctypes
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from typing import Any

from ... import _protocol as P
from ..._errors import ForkcheckError, InternalError, NondeterminismError, UsageError
from ..search import _DEPTH_WINDOW as DEPTH_WINDOW, unbounded_hint
from .worker import claim_of, error_payload, revive
from .shard import OPEN, shard_of

PR_SET_PDEATHSIG = 1
#: In the environment of every process of one distributed check (host, local cluster, workers, snapshots).
TAG = "FORKCHECK_RAY_CHECK"
POLL = 0.05  # seconds between rounds of the coordinator
START_TIMEOUT = 300.0  # seconds for every worker to start its root


class ShardLost(ForkcheckError):
    """A shard of the visited set died: the counts cannot be exact any more."""


class Host:
    def __init__(self, sock: socket.socket, request: dict[str, Any]) -> None:
        self.sock = sock
        self.req = request
        self.opts = request["opts"]
        self.inbox: queue.Queue = queue.Queue()
        self.stop_asked = False
        self.eof = False
        self.workers: list = []
        self.shards: list = []
        self.alive: dict[int, Any] = {}  # worker index -> its serve() ref
        self.deaths: list[str] = []
        self.temp_dir: str | None = None
        self.started_ray = False
        self.hint = ""  # the likely-infinite hint (UnboundedWarning), once said

    # -- the socket -------------------------------------------------------------------

    def send(self, *msg: Any) -> None:
        P.send(self.sock, msg)

    def read_forever(self) -> None:
        while True:
            try:
                msg = P.recv(self.sock)
            except (EOFError, OSError):
                self.inbox.put(("eof",))
                return
            self.inbox.put(msg)

    def poll_inbox(self) -> None:
        while True:
            try:
                msg = self.inbox.get_nowait()
            except queue.Empty:
                return
            if msg[0] in ("stop", "eof"):
                self.stop_asked = True
                self.eof = self.eof or msg[0] == "eof"

    # -- the cluster --------------------------------------------------------------------

    def start(self) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from .cluster import connect, start_local
        from .shard import VisitedShard
        from .worker import ExplorerWorker

        opts = self.opts
        address = opts.ray_address
        if address is None:
            self.temp_dir = tempfile.mkdtemp(prefix="fc-ray-")
            cpus = max(opts.workers or 2, os.cpu_count() or 1)
            start_local(cpus, self.temp_dir)
            self.started_ray = True
        else:
            connect(address)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        n = opts.workers or max(1, cpus)
        if n > cpus:
            raise UsageError(f"workers={n}: the Ray cluster has {cpus} CPU{'s' if cpus != 1 else ''}, one per worker; "
                             "give fewer workers or add nodes")
        count = n  # shards
        # The shards live on the head node, with Ray's own control store: a cluster that loses it is gone anyway.
        heads = [nd["NodeID"] for nd in ray.nodes() if nd.get("Alive") and "node:__internal_head__" in nd.get("Resources", {})]
        here = heads[0] if heads else ray.get_runtime_context().get_node_id()
        shard_cls = ray.remote(num_cpus=0, max_restarts=0)(VisitedShard)
        self.shards = [shard_cls.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote(i, count)
                       for i in range(count)]
        worker_cls = ray.remote(ExplorerWorker)
        env = {"FORKCHECK_OWNER": self.req["origin"].owner, TAG: os.environ.get(TAG, "")}
        nodes = [nd for nd in ray.nodes() if nd.get("Alive")]
        per_node = max(1, -(-n // max(1, len(nodes))))
        self.workers = [worker_cls.options(num_cpus=1, max_concurrency=8, max_restarts=0, scheduling_strategy="SPREAD",
                                           runtime_env={"env_vars": env}).remote(
            i, self.shards, opts, self.req["origin"], self.req["model_repr"], per_node, self.req.get("module"),
            self.req.get("found_on")) for i in range(n)]
        self.alive = {i: w.serve.remote() for i, w in enumerate(self.workers)}
        infos = self.get([w.ready.remote(START_TIMEOUT) for w in self.workers], START_TIMEOUT + 30)
        for info in infos:
            if "error" in info:
                raise _rebuild(info["error"])
        first = infos[0]
        for i, info in enumerate(infos[1:], 1):
            if info["fingerprint"] != first["fingerprint"]:
                raise NondeterminismError(
                    f"the initial state differs between worker 0 (on {first['host']}) and worker {i} (on "
                    f"{info['host']}): the setup depends on something outside the model, or the nodes run different "
                    "Python or forkcheck versions")
        self.root = first["report"]
        self.worker_pids = [info["pid"] for info in infos]
        fp = self.root.fingerprint
        (gid, _), = self.get([self.shards[shard_of(fp, count)].claim.remote(
            OPEN, [claim_of(self.root, opts.deadlock, -1, None, 0, ())])])[0]
        self.root_gid = gid
        self.shard_pids = self.get([s.pid.remote() for s in self.shards])
        self.get([w.go.remote() for w in self.workers])

    def get(self, refs: list, timeout: float | None = 60.0) -> list:
        import ray

        return ray.get(refs, timeout=timeout)

    # -- coordinating ------------------------------------------------------------------------

    def explore(self) -> dict[str, Any]:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        opts = self.opts
        started = time.monotonic()
        deadline = None if opts.time_limit is None else started + opts.time_limit
        causes: list[str] = []
        previous = None
        next_progress = 0.0
        asked: dict[int, float] = {}
        statuses: dict[int, dict] = {}
        status_refs: dict[int, Any] = {}
        terminated = False
        windows, mark = 0, 0  # the likely-infinite hint: windows of new states seen, the depth at the last
        while True:
            self.poll_inbox()
            self.check_workers()
            try:
                counts = ray.get([s.counters.remote() for s in self.shards], timeout=60)
            except RayActorError:
                raise self.shard_lost() from None
            created = sum(c[0] for c in counts)
            finished = sum(c[1] for c in counts)
            if created == finished and counts == previous:
                terminated = True
                break
            previous = counts
            said = self.hint
            windows, mark = self.watch_depth(created, max(c[5] for c in counts), windows, mark)
            if self.hint != said:
                next_progress = 0.0  # at once, as a local check says it
            if self.stop_asked:
                causes.append("interrupted")
                break
            if opts.stop_on_violation and sum(c[4] for c in counts):
                causes.append("stopped at the first violation")
                break
            if deadline is not None and time.monotonic() > deadline:
                causes.append(f"time_limit={opts.time_limit:g}s ran out")
                break
            # Worker statuses, without waiting for a worker that is busy or dying.
            for i in list(self.alive):
                if i not in status_refs:
                    status_refs[i] = self.workers[i].status.remote()
            ready, _ = ray.wait(list(status_refs.values()), num_returns=len(status_refs), timeout=0)
            for i, ref in list(status_refs.items()):
                if ref in ready:
                    del status_refs[i]
                    try:
                        statuses[i] = ray.get(ref)
                    except RayActorError:
                        statuses.pop(i, None)  # check_workers() will see its death
            self.balance(counts, statuses, asked)
            now = time.monotonic()
            if now >= next_progress:
                next_progress = now + 0.25
                self.send("progress", self.progress(counts, statuses, now - started))
            time.sleep(POLL)
        for w in self.alive:
            self.workers[w].stop.remote()
        finals: dict[int, dict] = {}
        for i in list(self.alive):
            try:
                finals[i] = ray.get(self.workers[i].finish.remote(), timeout=600)
            except RayActorError:
                self.died(i)
            except GetTimeoutError:
                raise ForkcheckError(f"worker {i} did not stop within 600 s") from None
        for i, f in finals.items():
            if f.get("failure"):
                raise _rebuild(f["failure"], self)
        try:
            dumps = ray.get([s.dump.remote() for s in self.shards], timeout=600)
            counts = ray.get([s.counters.remote() for s in self.shards], timeout=60)
        except RayActorError:
            raise self.shard_lost() from None
        self.send("progress", self.progress(counts, statuses, time.monotonic() - started))
        return {"dumps": dumps, "root_gid": self.root_gid, "root": self.root, "terminated": terminated,
                "causes": causes, "deaths": list(self.deaths), "workers": list(finals.values()),
                "worker_pids": self.worker_pids, "hint": self.hint}

    def watch_depth(self, states: int, depth: int, windows: int, mark: int) -> tuple[int, int]:
        """Search._watch_depth across the cluster, at the coordinator's rounds: say once when the depth grew
        with nearly every new state since the last window of DEPTH_WINDOW states (an UnboundedWarning)."""
        now = states // DEPTH_WINDOW
        if now <= windows:
            return windows, mark
        if not self.hint and depth - mark >= 0.9 * DEPTH_WINDOW * (now - windows):
            self.hint = unbounded_hint(depth, states, "time_limit")
        return now, depth

    def check_workers(self) -> None:
        """Workers whose serve() ended: dead (their states are opened again) or failed (the check stops)."""
        import ray
        from ray.exceptions import RayActorError

        if not self.alive:
            raise ForkcheckError("every worker died: " + "; ".join(self.deaths))
        done, _ = ray.wait(list(self.alive.values()), num_returns=len(self.alive), timeout=0)
        for i, ref in list(self.alive.items()):
            if ref not in done:
                continue
            try:
                kind, payload = ray.get(ref)
            except RayActorError as exc:
                self.died(i, exc)
                continue
            if kind == "error":
                raise _rebuild(payload, self)
            self.died(i)  # it quit without being told to: its states go to others
        if not self.alive:
            raise ForkcheckError("every worker died: " + "; ".join(self.deaths))

    def died(self, i: int, exc: BaseException | None = None) -> None:
        import ray
        from ray.exceptions import RayActorError

        if self.alive.pop(i, None) is None:
            return
        why = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else "its actor ended"
        self.deaths.append(f"worker {i}: {why}")
        try:
            ray.get([s.worker_died.remote(i) for s in self.shards], timeout=60)
        except RayActorError:
            raise self.shard_lost() from None

    def lost_shards(self) -> list[int]:
        import ray

        lost = []
        for k, s in enumerate(self.shards):
            try:
                ray.get(s.pid.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - any failure to answer means it is gone
                lost.append(k)
        return lost

    def shard_lost(self, lost: list[int] | None = None) -> ShardLost:
        lost = self.lost_shards() if lost is None else lost
        which = ", ".join(map(str, lost)) or "?"
        return ShardLost(f"shard {which} of the visited set ({len(self.shards)} shards, on the head node) died: "
                         "the states it recorded are lost, so no count would be exact and no result is given; "
                         "run the check again")

    def balance(self, counts: list, statuses: dict[int, dict], asked: dict[int, float]) -> None:
        """An idle worker and nothing open: ask the busiest worker to give states back to their shards."""
        if sum(c[2] for c in counts):
            return  # open states wait: idle workers take them
        live = {i: s for i, s in statuses.items() if i in self.alive}
        idle = [i for i, s in live.items() if s["idle"] and not s["frontier"]]
        if not idle:
            return
        now = time.monotonic()
        donors = sorted((s["frontier"], i) for i, s in live.items() if s["frontier"] >= 2 and asked.get(i, 0) < now)
        for frontier, i in reversed(donors[-len(idle):]):
            self.workers[i].share.remote(min(64, max(1, frontier // 2)))
            asked[i] = now + 0.2

    def progress(self, counts: list, statuses: dict[int, dict], seconds: float) -> dict[str, Any]:
        live = [statuses[i] for i in sorted(statuses) if i in self.alive]
        return {"states": sum(c[0] for c in counts), "transitions": sum(c[3] for c in counts),
                "violations": sum(c[4] for c in counts), "depth": max(c[5] for c in counts),
                "live_snapshots": sum(s["live_snapshots"] for s in live), "seconds": seconds,
                "workers": [{k: s[k] for k in ("index", "expanded", "frontier", "live_snapshots", "pid")} for s in live],
                "deaths": len(self.deaths), "shard_pids": list(self.shard_pids),
                **({"hint": self.hint} if self.hint else {})}

    def describe(self, requests: list) -> list:
        import ray
        from ray.exceptions import RayActorError

        for i in list(self.alive):
            try:
                return ray.get(self.workers[i].describe.remote(requests), timeout=600)
            except RayActorError:
                self.died(i)
        return [None] * len(requests)

    def close(self) -> None:
        try:
            import ray
        except ImportError:
            return

        for i in list(self.alive):
            try:
                self.workers[i].quit.remote()
            except Exception:  # noqa: BLE001
                pass
        if self.alive:
            try:
                ray.wait(list(self.alive.values()), num_returns=len(self.alive), timeout=10)
            except Exception:  # noqa: BLE001
                pass
        for actor in self.workers + self.shards:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass
        try:
            ray.shutdown()
        finally:
            if self.temp_dir is not None:
                shutil.rmtree(self.temp_dir, ignore_errors=True)


def _rebuild(payload: tuple[str, str, list[str]], host: Host | None = None) -> BaseException:
    """The forkcheck error a worker reported, as an exception of the same class.

    A worker's Ray call that failed ("RayError") means a shard died, if one
    did: that is the error to give.
    """
    name, message, _notes = payload
    if name == "RayError":
        lost = host.lost_shards() if host is not None else []
        if lost:
            return host.shard_lost(lost)  # type: ignore[union-attr]
        return InternalError(f"a worker's call to the cluster failed: {message}")
    return revive(payload)


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[1]))
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the explorer asks to stop, over the socket
    kind, request = P.recv(sock)
    assert kind == "check"
    host = Host(sock, request)
    try:
        if request["opts"].ray_address is None:
            from .cluster import isolate_network

            isolate_network()  # before Ray starts a thread: a user namespace needs a single-threaded process
        threading.Thread(target=host.read_forever, daemon=True).start()
        try:
            host.start()
            host.send("started")
            data = host.explore()
            host.send("explored", data)
            while True:
                msg = host.inbox.get()
                if msg[0] == "describe":
                    host.send("described", host.describe(msg[1]))
                elif msg[0] in ("close", "eof"):
                    break
        except ForkcheckError as exc:
            host.send("error", error_payload(exc))
        except Exception as exc:  # noqa: BLE001 - a bug, or Ray failing: one line for the caller, the rest in a note
            import traceback

            host.send("error", ("InternalError", f"the Ray host failed: {type(exc).__name__}: "
                                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                                [traceback.format_exc()]))
        except ModuleNotFoundError as exc:
            if exc.name != "ray":
                raise
            from .cluster import NO_RAY

            host.send("error", ("UsageError", NO_RAY, []))
        finally:
            host.close()
    except (BrokenPipeError, ConnectionResetError):
        return 1
    except ForkcheckError as exc:
        try:
            host.send("error", error_payload(exc))
        except OSError:
            pass
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
