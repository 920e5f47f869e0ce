"""The Ray backend: ``check(backend="ray")`` (docs/distributed.md).

``driver.py`` runs in the caller's process and never imports Ray; ``host.py``
is the Ray driver, in a process of its own; ``shard.py`` (the visited set,
sharded by fingerprint) and ``worker.py`` (a snapshot tree and a frontier) run
as Ray actors; ``assemble.py`` numbers the recorded graph breadth first;
``cluster.py`` starts a private local cluster or joins one.
"""
