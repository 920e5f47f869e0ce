"""The architecture, pinned: what runs inside a snapshot process imports nothing of the explorer,
and every public name has one home, ``forkcheck``."""

from __future__ import annotations

import ast
import pickle
import sys
import types
from pathlib import Path

import forkcheck as fc

PACKAGE = Path(fc.__file__).parent
#: What a snapshot process must never load: the explorer's side, the front ends, their dependencies.
EXPLORER_ONLY = ("forkcheck._check", "forkcheck._cli", "forkcheck._notebook", "forkcheck._bench", "forkcheck._graph",
                 "forkcheck._results", "forkcheck._trace", "trio", "networkx", "rich", "ray")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file of the package, relative ones resolved."""
    here = ["forkcheck"] + list(path.relative_to(PACKAGE).parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{alias.name}") for alias in node.names]  # x may be a module
    return out


def _forbidden(module: str) -> bool:
    return any(module == bad or module.startswith(bad + ".") for bad in EXPLORER_ONLY)


def test_nothing_under_app_imports_the_explorer_or_a_front_end():
    bad = []
    for path in sorted((PACKAGE / "_app").glob("*.py")):
        for line, module in _imports(path):
            if _forbidden(module):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not bad, "the snapshot side must not import the explorer side:\n" + "\n".join(bad)


def test_the_check_of_the_rule_sees_a_forbidden_import():
    # The rule above is only as good as the import reader: it must see relative and lazy imports.
    fake = PACKAGE / "_app" / "serve.py"
    found = {module for _, module in _imports(fake)}
    assert "forkcheck._protocol" in found and "forkcheck._app.fingerprint" in found
    code = "def f():\n    from .._check import search\n    from ..  import _notebook\n"
    path = PACKAGE / "_app" / "_probe_for_test.py"
    try:
        path.write_text(code)
        found = {module for _, module in _imports(path)}
    finally:
        path.unlink()
    assert "forkcheck._check.search" in found and "forkcheck._notebook" in found


@fc.model
def idle():
    async def a():
        await fc.checkpoint()

    fc.spawn(a)


def _loaded(view):
    return sorted(sys.modules)


def test_a_snapshot_process_loads_no_explorer_module():
    with fc.Explorer(idle) as ex:
        loaded = ex.root.eval(_loaded)
    bad = [m for m in loaded if _forbidden(m)]
    assert not bad, f"a snapshot process loaded {bad}"
    assert "forkcheck._app.runtime" in loaded  # the probe did run in a snapshot (serve runs as __main__)


def test_every_public_name_has_one_home_named_forkcheck():
    assert fc.__all__ == sorted(set(fc.__all__))
    objects = {}
    for name in fc.__all__:
        obj = getattr(fc, name)
        assert name in dir(fc)
        if isinstance(obj, (type, types.FunctionType)):
            assert obj.__module__ == "forkcheck", f"fc.{name} says it lives in {obj.__module__}"
            assert obj.__qualname__ == name
            assert pickle.loads(pickle.dumps(obj)) is obj  # pickles as forkcheck.NAME
        assert id(obj) not in objects, f"fc.{name} is fc.{objects.get(id(obj))}"
        objects[id(obj)] = name
    # nothing public is left out of __all__
    extra = [n for n in vars(fc) if not n.startswith("_") and n not in fc.__all__
             and isinstance(vars(fc)[n], (type, types.FunctionType))]
    assert not extra, f"public names missing from __all__: {extra}"
    assert str(fc.UsageError) == "<class 'forkcheck.UsageError'>"


def test_the_state_graph_is_written_in_one_schema_by_check_and_the_notebook():
    from forkcheck._graph import StateGraph

    r = idle.check()
    with fc.Explorer(idle) as ex:
        ex.root.step(0)
        ex.run()  # merges the run's graph into the explorer's: the same edge is not recorded twice
        assert isinstance(ex.graph, StateGraph) and isinstance(r.graph, StateGraph)
        for g in (r.graph, ex.graph):
            assert dict(g.nodes[0]).keys() == {"fingerprint", "violations", "enabled", "done", "labels"}
            (edge,) = g.edges(data=True)
            assert edge[2]["labels"] == ["a: checkpoint"] and edge[2]["actor"] == "a" and len(edge[2]["steps"]) == 1
        assert [dict(d) for _, d in r.graph.nodes(data=True)] == [dict(d) for _, d in ex.graph.nodes(data=True)]
