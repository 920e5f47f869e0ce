"""The explorer side: snapshot handles, the search, its strategies, liveness analysis, memory and
page accounting.  It drives the snapshot processes of ``forkcheck._app`` over ``forkcheck._protocol``."""
