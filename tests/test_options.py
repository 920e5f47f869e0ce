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
        "max_snapshots", "snapshot", "memory_limit", "huge_pages", "opaque", "reduction", "max_deviations",
        "symmetry", "backend", "workers", "ray_address")
    o = CheckOptions()
    assert (o.strategy, o.jobs, o.walks, o.transition_timeout, o.determinism_checks, o.stop_on_violation) == \
        ("bfs", 1, 100, 30.0, 20, True)


def test_it_is_frozen():
    o = CheckOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.strategy = "bfs"  # type: ignore[misc]


def test_its_strategies_are_the_explorers():
    from forkcheck._check.options import STRATEGY_NAMES

    assert STRATEGY_NAMES == tuple(STRATEGIES)


def test_its_reductions_are_the_explorers():
    from forkcheck._check.options import REDUCTION_NAMES
    from forkcheck._check import reduction

    assert REDUCTION_NAMES == reduction.REDUCTION_NAMES
    assert [reduction.make_reduction(n).name for n in REDUCTION_NAMES] == list(REDUCTION_NAMES)


@pytest.mark.parametrize("options, message", [
    ({"strategy": "astar"}, "strategy='astar' is not a strategy; use one of: bfs, dfs, random"),
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
    ({"reduction": "partial"}, "reduction='partial' is not a reduction; use one of: none, sleep, por"),
    ({"reduction": "sleep", "strategy": "random"}, "reduction='sleep' cannot be combined with strategy='random'"),
    ({"reduction": "por", "max_depth": 3}, "reduction='por' cannot be combined with max_depth=3"),
    ({"reduction": "por", "fingerprint": "pages"}, "reduction='por' cannot be combined with fingerprint='pages'"),
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


# --------------------------------------------------------------------------- a flag for every option (issue 20)

#: A value for each flag, and the field it must give: every option of OPTION_FLAGS needs one here.
FLAG_SAMPLES = {
    "strategy": (["--strategy", "bfs"], "bfs"),
    "max_depth": (["--max-depth", "7"], 7),
    "jobs": (["--jobs", "2"], 2),
    "fingerprint": (["--fingerprint", "pages"], "pages"),
    "deadlock": (["--no-deadlock"], False),
    "seed": (["--seed", "-3"], -3),
    "walks": (["--walks", "5"], 5),
    "fairness": (["--fairness", "strong"], "strong"),
    "max_states": (["--max-states", "9"], 9),
    "time_limit": (["--time-limit", "1.5"], 1.5),
    "snapshot": (["--snapshot", "replay"], "replay"),
    "opaque": (["--opaque", "distinct"], "distinct"),
    "huge_pages": (["--no-huge-pages"], False),
    "stop_on_violation": (["--keep-going"], False),
    "transition_timeout": (["--transition-timeout", "5"], 5.0),
    "determinism_checks": (["--determinism-checks", "0"], 0),
    "max_snapshots": (["--max-snapshots", "8"], 8),
    "memory_limit": (["--memory-limit", "2G"], 2 * 2 ** 30),
    "reduction": (["--reduction", "sleep"], "sleep"),
    "max_deviations": (["--max-deviations", "2"], 2),
    "symmetry": (["--no-symmetry"], False),
    "backend": (["--backend", "ray"], "ray"),
    "workers": (["--ray", "--workers", "3"], 3),  # --ray: workers need the Ray backend
    "ray_address": (["--ray", "10.0.0.1:6379"], "10.0.0.1:6379"),
}
#: What a flag sets besides its own option: --ray chooses the Ray backend.
FLAG_IMPLIES = {"workers": {"backend": "local"}, "ray_address": {"backend": "local"}}


def _options_of(*argv: str, command: str = "check") -> CheckOptions:
    extra = ["-o", "g.dot"] if command == "graph" else []
    return _cli._check_options(_cli.build_parser().parse_args([command, "m.py", *argv, *extra]), None)


def test_every_option_but_progress_has_a_flag_on_check_and_graph():
    assert set(_cli.OPTION_FLAGS) == set(OPTION_NAMES) - {"progress"}
    parser = _cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("check", "graph"):
        dests = {flag: a.dest for a in subparsers[command]._actions for flag in a.option_strings}
        for name, flag in _cli.OPTION_FLAGS.items():
            assert dests.get(flag) == name, (command, flag)


@pytest.mark.parametrize("name", sorted(_cli.OPTION_FLAGS))
def test_each_flag_reaches_its_option(name):
    argv, value = FLAG_SAMPLES[name]
    for command in ("check", "graph"):
        o = _options_of(*argv, command=command)
        assert getattr(o, name) == value
        # ... and only it: the others keep CheckOptions' defaults.
        assert dataclasses.replace(o, **{name: getattr(CheckOptions(), name), **FLAG_IMPLIES.get(name, {})}) \
            == CheckOptions()


def test_no_flag_is_check_options_defaults_and_progress_is_the_displays():
    assert _options_of() == CheckOptions()
    args = _cli.build_parser().parse_args(["check", "m.py"])
    assert _cli._check_options(args, print).progress is print


@pytest.mark.parametrize("argv, fragment", [
    (["--memory-limit", "2X"], "argument --memory-limit: '2X' is not a size: give bytes, or a number with K, M, G or T"),
    (["--memory-limit", "1M"], "argument --memory-limit: 1M is too small: give at least 64M"),
    (["--max-snapshots", "3"], "argument --max-snapshots: 3 is too small: give a whole number >= 4"),
    (["--max-snapshots", "many"], "argument --max-snapshots: 'many' is not a whole number: give a whole number >= 4"),
    (["--transition-timeout", "0"], "argument --transition-timeout: 0: give a number of seconds > 0"),
    (["--determinism-checks", "-1"], "argument --determinism-checks: -1 is negative: give a whole number >= 0"),
    (["--keep-going", "yes"], "unrecognized arguments: yes"),
])
def test_bad_flag_values_are_one_line_usage_errors(argv, fragment):
    with pytest.raises(_cli.CliError) as e:
        _options_of(*argv)
    assert fragment in one_line(e)


def test_sizes():
    assert [_cli._size(t) for t in ("64M", "64m", "64MiB", "64mb", " 1g ", "0.5G", str(2 ** 26))] == \
        [2 ** 26, 2 ** 26, 2 ** 26, 2 ** 26, 2 ** 30, 2 ** 29, 2 ** 26]


def _forkcheck(*argv: str, cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    root = os.path.dirname(HERE)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.pop("FORKCHECK_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "forkcheck", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_transition_timeout_from_the_command_line_and_its_message_names_the_flag(tmp_path):
    proc = _forkcheck("check", f"{CLI_MODELS}:slow", "--arg", "steps=1", "--arg", "delay=3",
                      "--transition-timeout", "0.5", "--determinism-checks", "0", "--quiet", cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert "VIOLATION (timeout)" in proc.stdout
    assert "did not reach its next await within 0.5s" in proc.stdout
    assert "raise check(transition_timeout=...) / --transition-timeout" in proc.stdout
    # The replay command it prints gives the replay the same budget, and replays the timeout.
    lines = proc.stdout.splitlines()
    command = lines[lines.index("Replay it with:") + 1].strip()
    assert command.endswith(" --transition-timeout 0.5"), command
    import shlex

    words = shlex.split(command)
    assert words[:2] == ["forkcheck", "replay"]
    again = _forkcheck(*words[1:], cwd=str(tmp_path))
    assert again.returncode == 1, again.stderr
    assert "VIOLATION (timeout)" in again.stdout and "within 0.5s" in again.stdout


def test_replay_takes_a_transition_timeout_checked_as_checks_is():
    from cli_models import slow

    with pytest.raises(fc.UsageError, match="transition_timeout=0"):
        fc.replay(slow(steps=1, delay=0.01), "fc1:", transition_timeout=0)


BOTH_BUGS = '''
import forkcheck as fc

@fc.model
def both_bugs():
    s = {"n": 0}

    async def a():
        for _ in range(2):
            await fc.checkpoint()
        while True:
            await fc.checkpoint()

    async def b():
        s["n"] += 1
        await fc.checkpoint()
        assert False, "b fails"

    fc.spawn(a)
    fc.spawn(b)
    fc.eventually(lambda: s["n"] == 5, name="five")
'''


def test_keep_going_judges_liveness_and_the_warning_names_it(tmp_path):
    model = tmp_path / "both.py"
    model.write_text(BOTH_BUGS)
    proc = _forkcheck("check", str(model), "--fairness", "none", "--quiet", cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert "check with stop_on_violation=False / --keep-going to judge liveness too" in proc.stderr
    assert "VIOLATION (liveness)" not in proc.stdout
    proc = _forkcheck("check", str(model), "--fairness", "none", "--keep-going", "--quiet", cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert "--keep-going" not in proc.stderr
    assert "VIOLATION (assertion)" in proc.stdout and "VIOLATION (liveness)" in proc.stdout


# --------------------------------------------------------------------------- the notebook


def test_explorer_run_builds_check_options_with_checks_messages():
    with fc.Explorer(two) as ex:
        for options, message in (({"jobs": 0}, "jobs=0: give a whole number >= 1"),
                                 ({"progress": 3}, "progress=3: give a callable taking a dict of counts, or None"),
                                 ({"colour": 1}, "check() got unknown option 'colour'; the options are: ")):
            with pytest.raises(fc.UsageError) as e:
                ex.run(**options)
            assert message in one_line(e)
        seen: list = []
        r = ex.run(strategy="bfs", stop_on_violation=False, progress=seen.append)
        assert (r.stats.states, r.stats.transitions) == (4, 4) and r.ok


def test_the_parser_is_built_from_the_fields_so_an_option_without_a_flag_is_refused(monkeypatch):
    from dataclasses import field, make_dataclass

    from forkcheck._check.options import Flag

    for f in dataclasses.fields(CheckOptions):
        flag = f.metadata["cli"]
        assert (f.name == "progress") == (flag is None), f.name
        if flag is not None:
            assert isinstance(flag, Flag) and flag.flag.startswith("--") and flag.help
    # A field added with a flag gets it on both commands; one added without is an error at once.
    grown = make_dataclass("Grown", [("colour", str, field(default="red", metadata={"cli": Flag(
        "--colour", "a colour", choices=("red", "blue"))}))], bases=(CheckOptions,), frozen=True, kw_only=True)
    monkeypatch.setattr(_cli, "CheckOptions", grown)
    args = _cli.build_parser().parse_args(["check", "m.py", "--colour", "blue"])
    assert args.colour == "blue"
    bare = make_dataclass("Bare", [("colour", str, field(default="red"))], bases=(CheckOptions,), frozen=True,
                          kw_only=True)
    monkeypatch.setattr(_cli, "CheckOptions", bare)
    with pytest.raises(fc.InternalError, match="check option colour has no command-line flag"):
        _cli.build_parser()
