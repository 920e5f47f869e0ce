"""The public face: every public name is in the API reference and has a docstring.

The site itself (``mkdocs build --strict``, see mkdocs.yml) and mypy run in ``.ci/run``;
these checks need neither, so they run with the rest of the suite.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import forkcheck

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference.md"


def _documented() -> list[str]:
    return re.findall(r"^::: forkcheck\.(\w+)\s*$", REFERENCE.read_text(), flags=re.M)


def _own_doc(obj: object, name: str) -> str:
    doc = obj.__doc__ if isinstance(obj, type) else inspect.getdoc(obj)
    doc = (doc or "").strip()
    if isinstance(obj, type) and doc.startswith(f"{name}("):
        return ""  # the signature a dataclass writes when the class has no docstring
    return doc


def _public_members(cls: type) -> list[tuple[str, object]]:
    """The public methods and properties that ``cls`` defines itself (not those it inherits)."""
    members = []
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if inspect.isfunction(attr) or isinstance(attr, property):
            members.append((f"{cls.__name__}.{name}", attr))
    return members


def test_every_public_name_is_in_the_reference():
    documented = _documented()
    assert sorted(set(forkcheck.__all__) - set(documented)) == []
    assert sorted(set(documented) - set(forkcheck.__all__)) == [], "the reference documents names not in __all__"
    assert len(documented) == len(set(documented)), "a name is documented twice"


@pytest.mark.parametrize("name", sorted(forkcheck.__all__))
def test_public_name_has_a_docstring(name):
    obj = getattr(forkcheck, name)
    assert _own_doc(obj, name), f"forkcheck.{name} has no docstring"
    if isinstance(obj, type):
        missing = [qual for qual, attr in _public_members(obj) if not _own_doc(attr, qual)]
        assert missing == [], f"public members without a docstring: {missing}"


def test_every_docs_page_is_in_the_site():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert [p for p in pages if f": {p}" not in nav] == []


def test_the_site_home_page_is_the_readme_intro():
    readme = (ROOT / "README.md").read_text()
    index = (ROOT / "docs" / "index.md").read_text()
    intro = readme.split("\n## Documentation\n")[0]
    assert index.split("\n## Documentation\n")[0] == intro, "docs/index.md: copy the README's intro again"
