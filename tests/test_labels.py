"""Transition labels: the same text in every process and every run, never a memory address."""

import enum
import re

import pytest

import forkcheck as fc
from forkcheck._app.runtime import label_text

ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def labels(result):
    return sorted(lbl for _, _, d in result.graph.edges(data=True) for lbl in d["labels"])


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Op:
    def __init__(self, n):
        self.n = n


class Bare:
    pass


class Slotted:
    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x


class OwnRepr:
    def __repr__(self):
        return f"<OwnRepr object at 0x{id(self):x} size=3>"


def fill_big():
    pass


class Jug:
    def fill(self):
        pass


def test_label_text_names_values_without_addresses():
    def local_fn():
        pass

    cases = [
        (fill_big, "fill_big"),
        (local_fn, "local_fn"),  # not test_...<locals>.local_fn
        (Jug().fill, "Jug.fill"),
        (Jug, "Jug"),
        (len, "len"),
        (Color.BLUE, "Color.BLUE"),
        (Op(2), "Op(n=2)"),
        (Bare(), "<Bare>"),
        (Slotted(1), "Slotted(x=1)"),
        (OwnRepr(), "<OwnRepr object size=3>"),
        ((fill_big, Bare()), "(fill_big, <Bare>)"),
        ((fill_big,), "(fill_big,)"),
        ([Op(1), {"k": fill_big}], "[Op(n=1), {'k': fill_big}]"),
        (frozenset({fill_big}), "frozenset({fill_big})"),
        ((lambda x: x + 1), "lambda x: x + 1"),
        ("s", "'s'"),
    ]
    for value, text in cases:
        assert label_text(value) == text, (value, text)


def test_lambdas_on_one_line_are_told_apart_by_their_text():
    ops = [lambda: 1 + 2, lambda y=3: y * 2]
    assert [label_text(f) for f in ops] == ["lambda: 1 + 2", "lambda y=3: y * 2"]


def test_choose_labels_of_functions_objects_enums_and_tuples_hold_no_address():
    @fc.model
    def m():
        def double():
            pass

        async def a():
            await fc.choose([fill_big, double, lambda: 0])
            await fc.choose([Op(1), Bare(), Bare()])
            await fc.choose([Color.RED, (fill_big, Bare())])

        fc.spawn(a)

    r = m.check()
    found = set(labels(r))
    assert not [lbl for lbl in found if ADDRESS.search(lbl)], found
    assert {"a: choose fill_big", "a: choose double", "a: choose lambda: 0", "a: choose Op(n=1)",
            "a: choose <Bare #1>", "a: choose <Bare #2>", "a: choose Color.RED",
            "a: choose (fill_big, <Bare>)"} == found


def test_messages_with_default_reprs_are_labelled_without_addresses():
    @fc.model
    def m():
        box = fc.Mailbox("box")
        net = fc.Network("net")

        async def sender():
            box.put(Op(1))
            net.send("b", Bare())

        async def receiver():
            await box.get()
            await net.recv("b")

        fc.spawn(sender)
        fc.spawn(receiver)

    found = labels(m.check())
    assert "receiver: get box -> Op(n=1)" in found and "receiver: recv <Bare> at 'b'" in found
    assert not [lbl for lbl in found if ADDRESS.search(lbl)], found


def test_actor_names_from_arguments_hold_no_address():
    @fc.model
    def m():
        async def worker(job):
            await fc.checkpoint()

        fc.spawn(worker, Bare())

    assert labels(m.check()) == ["worker(<Bare>): checkpoint"]


def test_choose_label_names_the_options():
    @fc.model
    def m():
        async def a():
            await fc.choose([fill_big, Jug], label=["fill", "jug"])
            await fc.choose(lambda: [1, 2], label=lambda o: f"n{o}")

        fc.spawn(a)

    # Both first options lead to one state (the chosen value is dropped), so n1 and n2 are taken once.
    assert labels(m.check()) == ["a: choose fill", "a: choose jug", "a: choose n1", "a: choose n2"]


@pytest.mark.parametrize("label, message", [
    ("ab", "give a list of names"),
    (3, "give a list of names"),
    (["x", 2], "every name must be a str"),
    (["x"], "has 1 names for 2 options"),
])
def test_choose_label_mistakes_are_usage_errors(label, message):
    @fc.model
    def m():
        async def a():
            await fc.choose(["p", "q"], label=label)

        fc.spawn(a)

    with pytest.raises(fc.UsageError, match=message):
        m.check()


def test_choose_label_mistakes_found_per_state_are_usage_errors():
    @fc.model
    def wrong_count():
        async def a():
            await fc.choose(lambda: [1, 2, 3], label=["x", "y"])

        fc.spawn(a)

    @fc.model
    def not_a_str():
        async def a():
            await fc.choose([1, 2], label=lambda o: o)

        fc.spawn(a)

    with pytest.raises(fc.UsageError, match="has 2 names for 3 options"):
        wrong_count.check()
    with pytest.raises(fc.UsageError, match="returned int 1 for option 1: the label callable must return a str"):
        not_a_str.check()
