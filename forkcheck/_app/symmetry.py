"""Symmetric values: ``fc.symmetric("rm", n)``, TLC's model values with ``Permutations``.

Runs inside the snapshot process.  A :class:`Symmetric` set holds ``n``
:class:`SymmetricValue` objects that the model promises to treat alike: it
compares them only with ``==`` (and uses them as dict keys, set members,
network addresses, actor arguments), never orders them, never makes numbers
or strings of them that it keeps in the state, and never singles one out.
States that differ only by a permutation of the values are then one state:
the fingerprint walk (``fingerprint.py``) renames the values into a
canonical order before it hashes the state (docs/symmetry.md).

What breaks the promise cheaply is refused here with a
:class:`~forkcheck.UsageError`: ordering the values (``<``, ``sorted``,
``min``), using them as numbers (``int()``, indexing a list with one,
arithmetic), formatting them with a format spec, picking one by position
(``RM[0]``).  The fingerprint walk refuses a string in the state that names a
value (``f"box{r}"`` kept in a dict), since renaming the value would leave the
string behind.
"""

from __future__ import annotations

from typing import Any, Iterator

from .._errors import UsageError

_NO_ORDER = ("symmetric values have no order: {what} would treat {v!r} differently from the other values of "
             "{name!r}, and symmetry would merge states that differ; compare them with == only, keep them in "
             "sets and dicts, and where an order is needed iterate the fc.symmetric set itself (then the "
             "outcome must not depend on that order)")
_NO_NUMBER = ("symmetric values are not numbers: {what} would turn {v!r} into a position that tells it apart from "
              "the other values of {name!r}; use the value itself as a dict key (d[{v!r}]) instead of an index")


class SymmetricValue:
    """One of the interchangeable values of an :func:`fc.symmetric <forkcheck.symmetric>` set.

    Compared by identity, hashed alike (so that no hash order tells them
    apart); shown as its set's name and a number (``rm0``), which only names
    it in traces and reports.
    """

    __slots__ = ("_set", "_i", "_k", "_tok", "_name")

    def __init__(self, owner: Symmetric, i: int, k: int) -> None:
        self._set = owner
        self._i = i  # its position in the set: never shown to the model as a number
        self._k = k  # its number among every symmetric value of the world (labels are indexed by it)
        self._name = f"{owner.name}{i}"
        self._tok = f"~{self._name}"  # its token in a walk that does not rename (symmetry off, option lists)

    def __repr__(self) -> str:
        return self._name

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        if spec:
            raise UsageError(f"format({self._name}, {spec!r}): a format spec treats a symmetric value as a number "
                             f"or a string to cut; write f'{{{self._name}}}' (its name), and keep the value itself, "
                             "not a string made from it, in the state")
        return self._name

    def __hash__(self) -> int:
        return self._set._hash  # every value of a set alike: a hash order must not tell them apart

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def _order(self, other: Any, op: str) -> Any:
        if isinstance(other, SymmetricValue) or other is None or isinstance(other, (int, float, str)):
            what = "sorting them or comparing with " + op
            raise UsageError(_NO_ORDER.format(what=what, v=self, name=self._set.name))
        return NotImplemented

    def __lt__(self, other: Any) -> Any:
        return self._order(other, "<")

    def __le__(self, other: Any) -> Any:
        return self._order(other, "<=")

    def __gt__(self, other: Any) -> Any:
        return self._order(other, ">")

    def __ge__(self, other: Any) -> Any:
        return self._order(other, ">=")

    def _number(self, what: str) -> Any:
        raise UsageError(_NO_NUMBER.format(what=what, v=self, name=self._set.name))

    def __index__(self) -> int:
        return self._number(f"using {self._name} as an index (a list index, range(), hex())")

    def __int__(self) -> int:
        return self._number(f"int({self._name})")

    def __float__(self) -> float:
        return self._number(f"float({self._name})")

    def __add__(self, other: Any) -> Any:
        return self._number(f"arithmetic on {self._name}")

    __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __floordiv__ = __rfloordiv__ = __add__
    __mod__ = __rmod__ = __truediv__ = __rtruediv__ = __pow__ = __rpow__ = __neg__ = __pos__ = __abs__ = __add__
    __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = __lshift__ = __rshift__ = __invert__ = __add__

    def __copy__(self) -> SymmetricValue:
        return self  # a value is unique: a copy of the state holds the same values

    def __deepcopy__(self, memo: dict) -> SymmetricValue:
        return self

    def __reduce__(self) -> tuple:
        # Out of its process (a view sent to the explorer) a value is a detached stand-in with its name.
        return (_detached, (self._set.name, self._i, self._set.n))


def _detached(name: str, i: int, n: int) -> SymmetricValue:
    """A value outside the snapshot process that made it: same name, compared by identity (a stand-in)."""
    owner = Symmetric.__new__(Symmetric)
    owner.name, owner.n, owner._hash = name, n, hash(("fc.symmetric", name))
    owner._values = ()
    return SymmetricValue(owner, i, -1)


class Symmetric:
    """The set of values ``fc.symmetric(name, n)`` returns: iterate it, test membership, take its length.

    It has no positions (``RM[0]`` would single a value out): iterate it
    (``for r in RM``), or give it to :func:`forkcheck.choose`.
    """

    __slots__ = ("name", "n", "_values", "_hash")

    def __init__(self, name: str, n: int, first_k: int) -> None:
        self.name = name
        self.n = n
        self._hash = hash(("fc.symmetric", name))
        self._values = tuple(SymmetricValue(self, i, first_k + i) for i in range(n))

    def __iter__(self) -> Iterator[SymmetricValue]:
        return iter(self._values)

    def __len__(self) -> int:
        return self.n

    def __contains__(self, v: object) -> bool:
        return isinstance(v, SymmetricValue) and v._set is self

    def __getitem__(self, i: Any) -> Any:
        raise UsageError(f"fc.symmetric({self.name!r}, {self.n})[{i!r}]: a symmetric set has no positions, since "
                         "picking a value by position treats it differently from the others; iterate the set "
                         "(for r in values: ...) or fc.choose() among its values")

    def __repr__(self) -> str:
        return f"symmetric({self.name!r}, {self.n})"

    def __fc_state__(self) -> tuple:
        return ("symmetric", self.name, self.n)  # the same under every permutation of its values

    def __reduce__(self) -> tuple:
        return (_detached_set, (self.name, self.n))


def _detached_set(name: str, n: int) -> Symmetric:
    owner = Symmetric.__new__(Symmetric)
    owner.name, owner.n, owner._hash = name, n, hash(("fc.symmetric", name))
    owner._values = tuple(SymmetricValue(owner, i, -1) for i in range(n))
    return owner


def holds_value(o: Any, depth: int = 0) -> bool:
    """Whether ``o`` is a symmetric value or a tuple or frozenset that holds one (at any depth of them).

    A dict with such a key is walked in the order of its keys' canonical keys
    (its insertion order is an order among the values: not state, by the
    promise).  The fingerprint walks implement the same test.
    """
    t = type(o)
    if t is SymmetricValue:
        return True
    if (t is tuple or t is frozenset) and depth < 100:
        for x in o:
            if holds_value(x, depth + 1):
                return True
    return False


def holds_value_deep(o: Any, depth: int = 0) -> bool:
    """Whether an actor's argument holds a symmetric value: through tuples, lists, sets and dicts too."""
    t = type(o)
    if t is SymmetricValue:
        return True
    if depth > 3:
        return False
    if t in (tuple, list, frozenset, set):
        return any(holds_value_deep(x, depth + 1) for x in o)
    if t is dict:
        return any(holds_value_deep(k, depth + 1) or holds_value_deep(v, depth + 1) for k, v in o.items())
    return False


def leaked_name(s: str, names: tuple) -> str | None:
    """The name of a symmetric value that the string ``s`` holds (``"box-rm1"`` holds ``rm1``), or None.

    ``names`` is ``((set name, n), ...)``.  A value's name is its set's name
    and then its number, not followed by another digit.  The C walk applies
    the same rule (``leaked`` in ``_cfingerprint.c``).
    """
    for prefix, n in names:
        start = s.find(prefix)
        while start >= 0:
            j = start + len(prefix)
            k = j
            while k < len(s) and "0" <= s[k] <= "9":
                k += 1
            if k > j and k - j <= 9 and int(s[j:k]) < n:
                return s[start:k]
            start = s.find(prefix, start + 1)
    return None


def symmetric(name: str, n: int) -> Symmetric:
    """Declare ``n`` interchangeable values: states that differ only by a permutation of them are one.

    Call it in the model's setup function and use the values as the
    identities of interchangeable parts (resource managers, clients,
    replicas): as actor arguments (``fc.spawn(manager, r)``), dict keys, set
    members, message fields and network addresses.  forkcheck then explores
    one state per orbit: a state and every state made from it by permuting
    the values (together with the actors spawned for them, and everything
    holding the values) count once, as TLC's model values with
    ``Permutations``, Murphi's scalarsets and Stateright's
    ``Representative`` do.

    The model promises to treat the values alike: it compares them with
    ``==`` only, never orders them (``sorted``, ``<``, ``min``), never makes
    numbers of them or strings it keeps in the state, never picks one out
    (``RM[0]``, a literal ``"rm0"``), and its outcome never depends on the
    order in which it iterates them.  The cheap ways to break the promise
    are refused with a :class:`~forkcheck.UsageError`; docs/symmetry.md says
    what else breaks it.  ``check(symmetry=False)`` explores every state, for
    comparison.  Liveness properties are not checked under symmetry.

    Parameters
    ----------
    name : str
        The set's name: an identifier that does not end with a digit.  The
        values are shown as ``name0``, ``name1``, ... in traces.
    n : int
        How many values (>= 1).

    Returns
    -------
    Symmetric
        The values: iterate it (``for r in RM``), test ``r in RM``, take
        ``len(RM)``, or pass it to :func:`forkcheck.choose`.  It has no
        positions.

    Examples
    --------
    >>> import forkcheck as fc
    >>> @fc.model
    ... def voters(n=3):
    ...     RM = fc.symmetric("rm", n)
    ...     votes = {}
    ...     async def voter(r):
    ...         votes[r] = await fc.choose(["yes", "no"])
    ...     for r in RM:
    ...         fc.spawn(voter, r)
    ...     return votes
    >>> voters.check().stats.states, voters.check(symmetry=False).stats.states
    (10, 79)
    """
    from .runtime import current_world

    world = current_world("fc.symmetric()")
    if not world.in_setup:
        raise UsageError("fc.symmetric() must be called in the model's setup function, not inside an actor")
    if not isinstance(name, str) or not name.isidentifier() or name[-1].isdigit():
        raise UsageError(f"fc.symmetric({name!r}, ...): the name must be an identifier that does not end with a "
                         "digit (the values are shown as name0, name1, ...), e.g. fc.symmetric('rm', 3)")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise UsageError(f"fc.symmetric({name!r}, {n!r}): give the number of values, a whole number >= 1")
    for other in world.symmetric:
        if other.name == name:
            raise UsageError(f"fc.symmetric({name!r}, ...) is declared twice: give each set its own name")
        if other.name.startswith(name) or name.startswith(other.name):
            raise UsageError(f"fc.symmetric({name!r}, ...): the names {other.name!r} and {name!r} start alike, so "
                             "a value's name would not say which set it belongs to; give the sets names that do not "
                             "start with each other")
    owner = Symmetric(name, n, len(world.symmetric_values))
    world.symmetric.append(owner)
    world.symmetric_values.extend(owner)
    return owner
