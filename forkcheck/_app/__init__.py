"""Runs inside every snapshot process: the program's runtime, its primitives, the fingerprint walk and
the command loop (``serve``).  Nothing here imports from ``forkcheck._check`` or a front end."""
