"""Reaching a Ray cluster: connect to one, or start a private local one reachable on loopback only.

Ray 2.60's core processes (GCS, raylets, workers, the driver) listen on every
interface, whatever address they are given, and its runtime-env agent on the
machine's address.  A local cluster that forkcheck starts for one check is
therefore started inside a network namespace of its own, whose only
interface is loopback: the host process (``host.py``) enters it before it
starts Ray, and every Ray process inherits it.  Nothing it listens on can be
reached from another machine, nor from this one outside the namespace.
Where the kernel refuses a namespace (unprivileged user namespaces turned
off), the check stops with a :class:`~forkcheck.UsageError` saying how to
run a cluster yourself instead.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct

from ..._errors import UsageError

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

#: The smallest object store Ray accepts is 75 MiB; forkcheck sends only paths and fingerprints.
OBJECT_STORE_BYTES = 80 * 2 ** 20

NO_RAY = ("backend='ray' needs Ray, which is not installed: pip install 'forkcheck[ray]' "
          "(or pip install 'ray>=2.40')")


def isolate_network() -> None:
    """Move this (single-threaded) process into a new network namespace with only loopback, up.

    Not root: a user namespace too, mapping this user to itself, so that no
    privilege is needed where unprivileged user namespaces are allowed.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWNET | CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise UsageError(
            f"cannot start a private Ray cluster: the kernel refused a network namespace ({errno.errorcode.get(err, err)}:"
            f" {os.strerror(err)}), and Ray listens on every interface; start a cluster on a trusted network yourself "
            "(ray start --head --node-ip-address 127.0.0.1) and pass its address (ray_address='127.0.0.1:6379', "
            "--ray 127.0.0.1:6379), see docs/distributed.md")
    if flags & CLONE_NEWUSER:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH22x", b"lo", 0)
        current = struct.unpack("16sH22x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", current | IFF_UP))


def interfaces() -> list[str]:
    """The network interfaces this process sees (``/proc/net/dev``)."""
    with open("/proc/net/dev") as f:
        return [line.split(":", 1)[0].strip() for line in f.readlines()[2:]]


def start_local(num_cpus: int, temp_dir: str) -> None:
    """Start a local single-node cluster in this process (call :func:`isolate_network` first)."""
    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                   object_store_memory=OBJECT_STORE_BYTES, _temp_dir=temp_dir, log_to_driver=False,
                   configure_logging=False, namespace="forkcheck")


def connect(address: str) -> None:
    """Join the cluster at ``address`` (``HOST:PORT`` or ``auto``) as a driver."""
    import ray

    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False, namespace="forkcheck")
    except ConnectionError as exc:
        raise UsageError(f"ray_address={address!r}: no Ray cluster answers there ({exc}); start one with "
                         "`ray start --head` and give the address it prints, or leave the address out to start a "
                         "private local cluster") from None
