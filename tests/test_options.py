"""CheckOptions (issue 14, "Public, typed options") and a flag for every option (issue 20)."""

from __future__ import annotations

import dataclasses
import inspect
import os
import subprocess
import sys

import pytest

import forkcheck as fc
from forkcheck import _cli
from forkcheck._check.options import OPTION_NAMES, CheckOptions
from forkcheck._check.strategies import STRATEGIES
from forkcheck._model import Model, ModelFactory

HERE = os.path.dirname(os.path.abspath(__file__))
CLI_MODELS = os.path.join(HERE, "cli_models.py")


def one_line(excinfo: pytest.ExceptionInfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, text
    return text


@fc.model
def two():
    async def a():
        await fc.checkpoint()

    fc.spawn(a)
    fc.spawn(a)


# --------------------------------------------------------------------------- the dataclass


def test_every_option_of_check_is_a_field_with_its_default():
    assert OPTION_NAMES == (
        "strategy", "max_depth", "jobs", "deadlock", "seed", "fingerprint", "stop_on_violation", "walks",
        "max_states", "transition_timeout", "time_limit", "progress", "determinism_checks", "fairness",
        "max_snapshots", "snapshot", "memory_limit", "huge_pages", "opaque")
    o = CheckOptions()
    assert (o.strategy, o.jobs, o.walks, o.transition_timeout, o.determinism_checks, o.stop_on_violation) == \
        ("dfs", 1, 100, 30.0, 20, True)


def test_it_is_frozen():
    o = CheckOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.strategy = "bfs"  # type: ignore[misc]


def test_its_strategies_are_the_explorers():
    from forkcheck._check.options import STRATEGY_NAMES

    assert STRATEGY_NAMES == tuple(STRATEGIES)


@pytest.mark.parametrize("options, message", [
    ({"strategy": "astar"}, "strategy='astar' is not a strategy; use one of: dfs, bfs, random"),
    ({"fingerprint": "md5"}, "fingerprint='md5' is not a fingerprint; use 'state' or 'pages'"),
    ({"max_depth": -1}, "max_depth=-1: give a whole number >= 0, or None for no bound"),
    ({"max_states": 1.5}, "max_states=1.5: give a whole number >= 0, or None for no bound"),
    ({"determinism_checks": True}, "determinism_checks=True: give a whole number >= 0, or None for no bound"),
    ({"determinism_checks": None}, "determinism_checks=None: give a whole number >= 0 (0 turns the check off)"),
    ({"snapshot": "copy"}, "snapshot='copy': use 'fork' (a process per state) or 'replay' "
                           "(rebuild every state from the root)"),
    ({"max_snapshots": 3}, "max_snapshots=3: give a whole number >= 4, or None for the machine's default"),
    ({"memory_limit": 1000}, "memory_limit=1000: give the address-space limit per snapshot in bytes, at least 64 MiB"),
    ({"jobs": 0}, "jobs=0: give a whole number >= 1"),
    ({"walks": "5"}, "walks='5': give a whole number >= 1"),
    ({"seed": 1.0}, "seed=1.0: give an int"),
    ({"transition_timeout": 0}, "transition_timeout=0: give a number of seconds > 0"),
    ({"transition_timeout": None}, "transition_timeout=None: give a number of seconds > 0"),
    ({"time_limit": float("nan")}, "time_limit=nan: give a number of seconds > 0"),
    ({"opaque": "ignore"}, "opaque='ignore': use 'error'"),
    ({"fairness": "maybe"}, "fairness='maybe' is not a fairness assumption; use 'weak', 'strong' or 'none'"),
    ({"huge_pages": "yes"}, "huge_pages='yes': give True (the root's heap on huge pages), False, or None"),
    ({"huge_pages": True, "fingerprint": "pages"}, "huge_pages=True cannot be combined with fingerprint='pages'"),
    ({"progress": 3}, "progress=3: give a callable taking a dict of counts, or None"),
])
def test_each_bad_value_is_a_one_line_usage_error(options, message):
    for build in (CheckOptions, CheckOptions.parse, two.check):
        with pytest.raises(fc.UsageError) as e:
            build(**options)
        assert message in one_line(e), build


def test_validated_again_by_replace():
    with pytest.raises(fc.UsageError, match="jobs=0"):
        dataclasses.replace(CheckOptions(), jobs=0)


def test_an_unknown_keyword_is_a_usage_error_listing_the_options():
    listing = "the options are: " + ", ".join(sorted(OPTION_NAMES))
    for build, who in ((CheckOptions, "CheckOptions()"), (CheckOptions.parse, "check()"), (two.check, "check()"),
                       (two().check, "check()")):
        with pytest.raises(fc.UsageError) as e:
            build(max_dept=3)
        assert one_line(e) == f"{who} got unknown option 'max_dept'; {listing}"


def test_positional_arguments_are_refused_in_one_line():
    with pytest.raises(fc.UsageError) as e:
        CheckOptions("bfs")  # type: ignore[misc]
    assert "takes its options as keywords" in one_line(e)


def test_huge_pages_stays_as_given_and_resolves_with_the_fingerprint():
    o = CheckOptions()
    assert o.huge_pages is None and o.uses_huge_pages
    assert "huge_pages=None" in repr(o)
    # None resolves again after replace: pages mode turns it off instead of refusing a True it never asked for.
    assert dataclasses.replace(o, fingerprint="pages").uses_huge_pages is False
    assert CheckOptions(huge_pages=False).uses_huge_pages is False


# --------------------------------------------------------------------------- Model.check's keywords


@pytest.mark.parametrize("check", [Model.check, ModelFactory.check])
def test_every_option_is_a_typed_keyword_of_check_with_the_fields_default(check):
    params = inspect.signature(check).parameters
    fields = {f.name: f for f in dataclasses.fields(CheckOptions)}
    assert [n for n in params if n != "self"] == [*OPTION_NAMES, "options"]
    for name, field in fields.items():
        p = params[name]
        assert p.kind is p.KEYWORD_ONLY, name
        assert p.default == field.default, name
        assert p.annotation == field.type, name  # both are strings (from __future__ import annotations)
    assert params["options"].default is None and params["options"].annotation == "CheckOptions | None"


def test_every_option_is_in_the_docstring_of_check():
    doc = Model.check.__doc__
    for name in (*OPTION_NAMES, "options"):
        assert f"\n        {name} : " in doc, name


def test_keywords_given_with_options_replace_its_fields():
    base = CheckOptions(strategy="bfs", max_depth=1)
    seen = []
    r = two.check(options=base, progress=seen.append)
    assert r.stats.max_depth == 1 and r.stats.states == 3
    r = two.check(options=base, max_depth=None)
    assert r.stats.states == 4
    # A keyword written with its default value still replaces the field.
    r = two.check(options=CheckOptions(max_depth=0), max_depth=None)
    assert r.stats.states == 4


def test_options_must_be_a_check_options():
    with pytest.raises(fc.UsageError) as e:
        two.check(options={"strategy": "bfs"})  # type: ignore[arg-type]
    assert one_line(e).startswith("options={'strategy': 'bfs'}: give a forkcheck.CheckOptions")


def test_the_same_result_through_options_and_keywords():
    from cli_models import die_hard  # tests/ is on sys.path (conftest)

    a = die_hard.check(strategy="bfs", stop_on_violation=False)
    b = die_hard.check(options=CheckOptions(strategy="bfs", stop_on_violation=False))
    assert (a.stats.states, a.stats.transitions) == (b.stats.states, b.stats.transitions)
    assert [v.trace.token for v in a.violations] == [v.trace.token for v in b.violations]
