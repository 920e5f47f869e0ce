"""The ``forkcheck`` command line: check a model, replay a trace, export the state graph, list models.

Commands (see docs/cli.md)::

    forkcheck check  TARGET [--arg NAME=VALUE ...] [check options] [--json F] [--dot F] [--graphml F]
    forkcheck replay TARGET TOKEN [--arg NAME=VALUE ...] [--step K]
    forkcheck graph  TARGET [--arg NAME=VALUE ...] [check options] --format dot|graphml|json -o FILE
    forkcheck list   FILE

``TARGET`` is ``path/to/file.py[:model]`` or ``package.module[:model]``.

Exit codes: 0 no violation, 1 a violation (or a trace that does not replay),
2 a usage or input error, 3 an internal error, 130 interrupted, 141 stdout
closed early.  Errors are one line on stderr; ``--debug`` adds the Python
traceback.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import os
import re
import shlex
import signal
import sys
import time
import traceback
import types
import warnings
from typing import IO, Any, Callable, Iterator, Sequence

import cloudpickle

from . import _where
from ._check.options import CheckOptions
from ._errors import ForkcheckError, InternalError, Interrupted, ModelError, NondeterminismError, UsageError
from ._model import FILE_MODULE_PREFIX, Model, ModelFactory, replay_command
from ._results import CheckResult, Violation
from ._trace import Trace, format_state

__all__ = ["main", "EXIT_OK", "EXIT_VIOLATION", "EXIT_USAGE", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_BROKEN_PIPE"]

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a process that a closed pipe ended

PROG = "forkcheck"

# Plain (non-terminal) progress lines are rate-limited so that logs stay short.
_PLAIN_PROGRESS_INTERVAL = 2.0

_GRAPH_FORMATS = ("dot", "graphml", "json")
_GRAPH_SUFFIXES = {".dot": "dot", ".gv": "dot", ".graphml": "graphml", ".json": "json"}


class CliError(Exception):
    """A usage or input error of the command line: reported on one line, exit status 2."""


# --------------------------------------------------------------------------- argument parsing


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage block) and go through :func:`main`."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{message} (see '{self.prog} --help')")


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``, with a message that says which."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number: give a whole number >= {minimum}") from None
        if value < minimum:
            too = "negative" if minimum == 0 else "too small"
            raise argparse.ArgumentTypeError(f"{text} is {too}: give a whole number >= {minimum}")
        return value

    return parse


_non_negative_int = _whole_number(0)
_positive_int = _whole_number(1)
_snapshot_count = _whole_number(4)  # max_snapshots: check() refuses fewer


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: give a number of seconds > 0")
    return value


def _add_target_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET",
                   help="the model: path/to/file.py[:model] or package.module[:model]; "
                        ":model may be left out when the file defines exactly one model")


def _add_arg_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE",
                   help="an argument of the model's setup function, as a Python literal "
                        "(repeatable): --arg n=3, --arg name=\"'alice'\", --arg ids='[1, 2]'")


def _add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true",
                   help="show Python tracebacks on errors, and the snapshot processes' stderr")


_SIZE_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def _size(text: str) -> int:
    """A size in bytes: a whole number, or with a binary unit K, M, G or T (``2G`` is 2 GiB).

    Examples
    --------
    >>> _size("2G"), _size("512MiB"), _size("1.5g"), _size("67108864")
    (2147483648, 536870912, 1610612736, 67108864)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: give bytes, or a number with K, M, G or T "
                                         "(powers of 1024), e.g. 2G")
    value = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])
    if value < 2 ** 26:
        raise argparse.ArgumentTypeError(f"{text} is too small: give at least 64M (an interpreter needs about that)")
    return value


def _option_flags() -> dict[str, Any]:
    """Each check option's Flag, from the metadata of its CheckOptions field; None for ``progress``.

    A field without the metadata is refused here, when the parser is built:
    a new option cannot go without a flag.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(CheckOptions):
        if "cli" not in f.metadata:
            raise InternalError(f"check option {f.name} has no command-line flag: give its CheckOptions field "
                                "metadata={'cli': Flag(...)} (or {'cli': None} when the command line sets it itself)")
        out[f.name] = f.metadata["cli"]
    return out


#: The flag of every check option but ``progress``, which the command line drives itself.
OPTION_FLAGS: dict[str, str] = {name: flag.flag for name, flag in _option_flags().items() if flag is not None}

#: How a flag's text is read (Flag.value), as an argparse type.
_VALUE_TYPES: dict[str, Callable[[str], Any]] = {
    "whole>=0": _non_negative_int, "whole>=1": _positive_int, "whole>=4": _snapshot_count, "int": _int,
    "seconds": _seconds, "size": _size,
}


class _OptionalText(argparse.Action):
    """A flag whose text may be left out (Flag.value "text?"), and that sets the fields of Flag.implies too.

    ``--ray [ADDRESS]``: the Ray backend, on the cluster at ADDRESS, or on a
    private local one without it.  A text that names a file is the TARGET
    written after the flag, not its value: refused, saying where to write it.
    """

    def __init__(self, *args: Any, implies: tuple[tuple[str, Any], ...] = (), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.implies = implies

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if values and (values.endswith(".py") or os.path.exists(values)):
            flag, name = option_string or self.option_strings[0], self.metavar
            raise argparse.ArgumentError(self, f"{values!r} looks like the TARGET, not the {name} of {flag}: write "
                                               f"the TARGET before {flag}, or {flag}={name}")
        for field, value in self.implies:
            setattr(namespace, field, value)
        setattr(namespace, self.dest, values or None)


def _add_check_options(p: argparse.ArgumentParser) -> Any:
    """The exploration options of check and graph, one per CheckOptions field; returns the "output" group.

    Each flag stores into the CheckOptions field of its name, None when not given, so that
    CheckOptions' own defaults apply (one place says what the defaults are).
    """
    g = p.add_argument_group("exploration")
    for name, flag in _option_flags().items():
        if flag is None:
            continue
        kw: dict[str, Any] = {"dest": name, "default": None, "help": flag.help}
        if flag.implies and flag.value != "text?":
            raise InternalError(f"check option {name}: Flag.implies is read only with value='text?'")
        if flag.choices:
            kw["choices"] = list(flag.choices)
        elif flag.value == "text?":  # --ray [ADDRESS]
            kw.update(action=_OptionalText, nargs="?", metavar=flag.metavar, implies=flag.implies)
        elif flag.value:
            kw.update(type=_VALUE_TYPES[flag.value], metavar=flag.metavar)
        else:
            kw.update(action="store_const", const=flag.switch)
        g.add_argument(flag.flag, **kw)
    o = p.add_argument_group("output")
    o.add_argument("--quiet", "-q", action="store_true", help="no progress display on stderr")
    return o


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``forkcheck`` command.

    Returns
    -------
    argparse.ArgumentParser
        Its ``error`` raises :class:`CliError` instead of exiting, so that
        :func:`main` reports every error the same way.
    """
    from . import __version__

    # allow_abbrev=False: an abbreviation that works today (--max) would break when an option is added.
    parser = _Parser(prog=PROG, allow_abbrev=False,
                     description="Model-check simulated concurrent and distributed Python programs.",
                     epilog="Exit status: 0 no violation, 1 violation, 2 usage or input error, 3 internal error, "
                            "130 interrupted.  See docs/cli.md.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("check", allow_abbrev=False, help="explore every state of a model and report violations",
                       description="Explore every state of a model and report violations.")
    _add_target_arguments(p)
    _add_arg_option(p)
    o = _add_check_options(p)
    o.add_argument("--json", metavar="FILE", help="write a JSON report (see docs/cli.md for its keys); - is stdout")
    o.add_argument("--dot", metavar="FILE", help="write the state graph in Graphviz DOT; - is stdout")
    o.add_argument("--graphml", metavar="FILE", help="write the state graph in GraphML; - is stdout")
    _add_common_options(p)

    p = sub.add_parser("replay", allow_abbrev=False, help="re-execute a trace token and show each step and state",
                       description="Re-execute the trace a token names, printing each step and the state after it.")
    _add_target_arguments(p)
    p.add_argument("token", metavar="TOKEN", help="a trace token (fc1:...) from a check report")
    _add_arg_option(p)
    p.add_argument("--step", type=_non_negative_int, default=None, metavar="K",
                   help="show only step K and the state after it (0 is the initial state)")
    p.add_argument("--transition-timeout", type=_seconds, default=30.0, metavar="SECONDS",
                   help="a step taking longer is a timeout violation, as in check (default 30): give what the "
                        "check was given")
    _add_common_options(p)

    p = sub.add_parser("graph", allow_abbrev=False, help="explore a model and export its state graph",
                       description="Explore a model and export its state graph.")
    _add_target_arguments(p)
    _add_arg_option(p)
    o = _add_check_options(p)
    o.add_argument("--format", choices=_GRAPH_FORMATS, default=None,
                   help="graph format (default: from the extension of -o: .dot/.gv, .graphml, .json)")
    o.add_argument("-o", "--output", metavar="FILE", required=True, help="where to write the graph; - is stdout")
    _add_common_options(p)

    p = sub.add_parser("list", allow_abbrev=False, help="list the models a file defines",
                       description="List the models a file (or module) defines, with their signatures.")
    p.add_argument("target", metavar="FILE", help="path/to/file.py or package.module")
    _add_common_options(p)

    p = sub.add_parser("bench", allow_abbrev=False, add_help=False, prefix_chars="\0",
                       help="measure forkcheck (forkcheck bench --help; docs/benchmarks.md)")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    return parser


def parse_model_args(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``--arg NAME=VALUE`` items; each VALUE is a Python literal.

    Parameters
    ----------
    items : sequence of str
        The ``NAME=VALUE`` texts, in command-line order.

    Returns
    -------
    dict
        Keyword arguments for the model's setup function.

    Raises
    ------
    CliError
        For a missing ``=``, a NAME that is not an identifier, a NAME given
        twice, or a VALUE that is not a Python literal.

    Examples
    --------
    >>> parse_model_args(["n=3", "name='x'", "ids=[1, 2]"])
    {'n': 3, 'name': 'x', 'ids': [1, 2]}
    >>> parse_model_args(["name=x"])
    Traceback (most recent call last):
    ...
    forkcheck._cli.CliError: --arg name=x: x is not a Python literal; to pass the string 'x', quote it: --arg name="'x'"
    """
    out: dict[str, Any] = {}
    for item in items:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq:
            raise CliError(f"--arg {item}: write NAME=VALUE, e.g. --arg n=3")
        if not name.isidentifier():
            raise CliError(f"--arg {item}: {name!r} is not an argument name; write NAME=VALUE, e.g. --arg n=3")
        if name in out:
            raise CliError(f"--arg {name} is given twice: give each argument once")
        try:
            out[name] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            if re.fullmatch(r"[^\s'\"]+", text.strip() or "''"):
                # The shell ate the quotes, or none were written: the usual mistake for strings.
                raise CliError(f"--arg {item}: {text.strip()} is not a Python literal; to pass the string "
                               f"{text.strip()!r}, quote it: --arg {name}=\"{text.strip()!r}\"") from None
            raise CliError(f"--arg {item}: {text.strip()!r} is not a Python literal; give a literal such as "
                           f"3, 'text', [1, 2] or {{'a': 1}} (quote strings: --arg {name}=\"'text'\")") from None
    return out


# --------------------------------------------------------------------------- loading the target


@dataclasses.dataclass
class Target:
    """A loaded ``TARGET``: where it came from, the module, and the chosen model object."""

    text: str  # as typed on the command line
    source: str  # the file path or module name part
    module: types.ModuleType
    name: str  # the model's attribute name in the module
    obj: ModelFactory | Model


def split_target(text: str) -> tuple[str, str | None]:
    """Split ``source[:model]`` into the source and the model name (None when left out).

    Examples
    --------
    >>> split_target("models/jugs.py:die_hard")
    ('models/jugs.py', 'die_hard')
    >>> split_target("pkg.models")
    ('pkg.models', None)
    """
    source, colon, attr = text.rpartition(":")
    if not colon:
        return text, None
    if not attr:
        raise CliError(f"{text!r}: nothing follows ':'; write path/to/file.py:model or package.module:model")
    if not attr.isidentifier():
        if os.path.exists(text):  # a file whose name happens to contain ':'
            return text, None
        raise CliError(f"{text!r}: {attr!r} is not a model name; write path/to/file.py:model or package.module:model")
    return source, attr


def _is_path(source: str) -> bool:
    return source.endswith(".py") or "/" in source or os.sep in source or os.path.isfile(source)


def _load_file(path: str, module_name: str | None = None) -> types.ModuleType:
    """Import a file by path so that its models ship to the snapshot process by value.

    ``module_name`` is the name the module had where a trace was found
    (:attr:`Trace.module`): a file that Python imports under that name from
    one of its parent directories (pytest's test modules) is imported so,
    and a script's (``__main__``) gets that name once it has run, so that the
    names of its classes, and the fingerprints of the states that hold them,
    are the same as in the check.
    """
    if not os.path.exists(path):
        raise CliError(f"{path}: no such file; give the path of a Python file (path/to/file.py[:model]) "
                       "or a module name (package.module[:model])")
    if os.path.isdir(path):
        raise CliError(f"{path} is a directory; give a Python file (path/to/file.py[:model]) "
                       "or a module name (package.module[:model])")
    abspath = os.path.abspath(path)
    if module_name and module_name != "__main__":
        by_name = _import_as(abspath, module_name)
        if by_name is not None:
            return by_name
    module = _load_by_path(path, abspath)
    if module_name == "__main__" and module.__name__ != "__main__":
        _rename(module, "__main__")
    return module


def _import_as(abspath: str, name: str) -> types.ModuleType | None:
    """The file ``abspath`` imported as module ``name`` from the directory that makes it so, or None if it is not."""
    parts = name.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    root = os.path.dirname(abspath)
    for _ in parts[1:]:
        root = os.path.dirname(root)
    where = os.path.join(root, *parts)
    if abspath not in (where + ".py", os.path.join(where, "__init__.py")):
        return None
    loaded = sys.modules.get(name)
    if loaded is None:
        if root not in sys.path:
            sys.path.insert(0, root)
        try:
            with _watch_checks(abspath):
                loaded = importlib.import_module(name)
        except ImportError:
            return None
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure of the user's file is an input error
            raise CliError(f"importing {abspath} failed: {_exc_line(exc)}{_user_location(exc, abspath)}; "
                           "fix the file (run with --debug for the traceback)") from exc
    file = getattr(loaded, "__file__", None)
    return loaded if file and os.path.abspath(file) == abspath else None


def _rename(module: types.ModuleType, name: str) -> None:
    """Give a module loaded by path the name it had elsewhere (``__main__``), after it ran.

    Its classes and functions take the name as their ``__module__`` (what
    class names in fingerprints are made of), and cloudpickle then ships
    them by value as it ships a script's.
    """
    old = module.__name__
    module.__dict__["__name__"] = name
    seen: set[int] = set()

    def retag(obj: Any) -> None:
        for fn in (obj, getattr(obj, "__func__", None), getattr(obj, "fget", None), getattr(obj, "fset", None)):
            if fn is None or id(fn) in seen or getattr(fn, "__module__", None) != old:
                continue
            if not isinstance(fn, (type, types.FunctionType)):
                continue
            seen.add(id(fn))
            try:
                fn.__module__ = name
            except (TypeError, AttributeError):  # pragma: no cover - an object that refuses it keeps its name
                continue
            if isinstance(fn, type):
                for v in list(vars(fn).values()):
                    retag(v)

    for v in list(vars(module).values()):
        retag(v)


def _load_by_path(path: str, abspath: str) -> types.ModuleType:
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(abspath))[0])
    # The module's name is part of the fingerprint of the model's classes, enum members and
    # objects, so it must not depend on where the file is: a token must replay after the file
    # moved.  Only a second file of the same name in this process (two models.py) gets its path's
    # hash too, so that they do not replace each other in sys.modules.
    name = f"{FILE_MODULE_PREFIX}{stem}"
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) != abspath:
        name = f"{name}_{hashlib.sha1(abspath.encode()).hexdigest()[:10]}"
        loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    # Like `python file.py`: the file's siblings are importable, here and in the snapshot process
    # (which receives this sys.path).
    directory = os.path.dirname(abspath)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    loader = importlib.machinery.SourceFileLoader(name, abspath)
    spec = importlib.util.spec_from_file_location(name, abspath, loader=loader)
    assert spec is not None  # an explicit loader always gives a spec
    module = importlib.util.module_from_spec(spec)
    # The snapshot process cannot import a module loaded by path: ship it by value.
    module.__forkcheck_by_value__ = True  # type: ignore[attr-defined]
    sys.modules[name] = module
    cloudpickle.register_pickle_by_value(module)
    try:
        with _watch_checks(abspath):
            loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except SyntaxError as exc:
        _forget(name)
        where = f"{path}:{exc.lineno}" if exc.lineno else path
        raise CliError(f"{where}: syntax error: {exc.msg}; fix the file and run again") from exc
    except BaseException as exc:  # noqa: BLE001 - any failure of the user's file is an input error
        _forget(name)
        raise CliError(f"importing {path} failed: {_exc_line(exc)}{_user_location(exc, abspath)}; "
                       "fix the file (run with --debug for the traceback)") from exc
    return module


@contextlib.contextmanager
def _watch_checks(path: str) -> Iterator[None]:
    """While ``path`` is imported: a check it runs is announced as a warning, once, with its line."""
    from . import _model

    said: list[bool] = []

    def announce() -> None:
        if said:
            return
        said.append(True)
        frame: types.FrameType | None = sys._getframe(1)
        while frame is not None and os.path.abspath(frame.f_code.co_filename) != path:
            frame = frame.f_back
        where = _where.relative(f"{path}:{frame.f_lineno}") if frame is not None else _where.relative(f"{path}:?")
        print(f"{PROG}: warning: {where} runs a check when the file is imported, so forkcheck runs it too when it "
              "loads the file: put the file's own checks under `if __name__ == \"__main__\":`",
              file=sys.stderr, flush=True)

    saved, _model.on_check = _model.on_check, announce
    try:
        yield
    finally:
        _model.on_check = saved


def _forget(name: str) -> None:
    module = sys.modules.pop(name, None)
    if module is not None:
        try:
            cloudpickle.unregister_pickle_by_value(module)
        except ValueError:
            pass


def _load_module(name: str) -> types.ModuleType:
    # Like `python -m`: modules of the current directory are importable (the console script's
    # sys.path[0] is its bin directory, not the current directory).
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise CliError(f"no module named {name!r}: give the path of a Python file (path/to/file.py[:model]), "
                           "or a module importable from the current directory or PYTHONPATH") from exc
        raise CliError(f"importing {name} failed: {_exc_line(exc)}; "
                       "fix the module (run with --debug for the traceback)") from exc
    except BaseException as exc:  # noqa: BLE001 - any failure of the user's module is an input error
        raise CliError(f"importing {name} failed: {_exc_line(exc)}{_user_location(exc, None)}; "
                       "fix the module (run with --debug for the traceback)") from exc


def load_source(source: str, module_name: str | None = None) -> types.ModuleType:
    """Import ``source``: a file path (loaded by path, shipped by value) or a module name.

    Parameters
    ----------
    source : str
        ``path/to/file.py`` or ``package.module``.
    module_name : str, optional
        For a file, the name its module had where a trace was found (see
        :func:`_load_file`).

    Returns
    -------
    types.ModuleType
    """
    return _load_file(source, module_name) if _is_path(source) else _load_module(source)


def find_models(module: types.ModuleType) -> dict[str, ModelFactory | Model]:
    """The models at module level of ``module``, by attribute name, in definition order.

    Examples
    --------
    >>> import types, forkcheck as fc
    >>> m = types.ModuleType("m")
    >>> m.a = fc.model(lambda: None); m.b = 3
    >>> list(find_models(m))
    ['a']
    """
    return {k: v for k, v in vars(module).items() if isinstance(v, (ModelFactory, Model))}


def _describe_object(obj: Any) -> str:
    if inspect.isfunction(obj) or inspect.iscoroutinefunction(obj):
        return f"a function ({'async ' if inspect.iscoroutinefunction(obj) else ''}def {obj.__name__})"
    if inspect.isclass(obj):
        return f"a class ({obj.__name__})"
    if isinstance(obj, types.ModuleType):
        return f"a module ({obj.__name__})"
    return f"a {type(obj).__name__}"


def load_target(text: str, module_name: str | None = None) -> Target:
    """Load ``TARGET`` and pick its model.

    Parameters
    ----------
    text : str
        ``path/to/file.py[:model]`` or ``package.module[:model]``.
    module_name : str, optional
        For a file, the name its module had where a trace was found.

    Returns
    -------
    Target

    Raises
    ------
    CliError
        The file or module is missing or fails to import, names no model, or
        defines several models and none was named.
    """
    source, attr = split_target(text)
    module = load_source(source, module_name)
    models = find_models(module)
    listing = f"its models: {', '.join(models)}" if models else "it defines no model"
    if attr is None:
        if len(models) == 1:
            (attr,) = models
        elif not models:
            raise CliError(f"{source} defines no model: decorate the setup function with @forkcheck.model "
                           "(a model is a @forkcheck.model function or a forkcheck.Model at module level)")
        else:
            first = next(iter(models))
            raise CliError(f"{source} defines {len(models)} models ({', '.join(models)}): name one, "
                           f"e.g. {source}:{first}")
    if not hasattr(module, attr):
        raise CliError(f"{source} has no attribute {attr!r} ({listing}); check the name after ':'")
    obj = getattr(module, attr)
    if not isinstance(obj, (ModelFactory, Model)):
        if inspect.iscoroutinefunction(obj):
            hint = "an asyncio program's main is checked decorated with @forkcheck.asyncio_model"
        elif inspect.isfunction(obj):
            hint = "decorate it with @forkcheck.model (or @forkcheck.asyncio_model, for an asyncio program)"
        else:
            hint = "a model is a @forkcheck.model function or a forkcheck.Model"
        raise CliError(f"{source}:{attr} is {_describe_object(obj)}, not a forkcheck model: {hint} ({listing})")
    return Target(text, source, module, attr, obj)


def bind_model(obj: ModelFactory | Model, kwargs: dict[str, Any]) -> Model:
    """The :class:`Model` to check: a factory called with ``kwargs``, or a Model with them overriding its own.

    Raises
    ------
    CliError
        When the setup function does not accept the arguments.
    """
    try:
        if isinstance(obj, ModelFactory):
            return obj(**kwargs)
        if not kwargs:
            return obj
        return obj.factory_class(obj.fn)(*obj.args, **{**obj.kwargs, **kwargs})
    except UsageError as exc:
        raise CliError(f"--arg: {exc}") from None


def model_signature(name: str, obj: ModelFactory | Model) -> str:
    """One line for ``forkcheck list``: ``name(signature)``, or ``name = model(args)`` for a bound Model."""
    if isinstance(obj, ModelFactory):
        return f"{name}{inspect.signature(obj.fn)}"
    return f"{name} = {obj!r}"


# --------------------------------------------------------------------------- locations


# --------------------------------------------------------------------------- progress


class ProgressDisplay:
    """Shows check() progress on stderr: a live rich line on a terminal, rate-limited plain lines otherwise.

    Parameters
    ----------
    label : str
        What is being checked (the model's repr).
    mode : {"live", "plain", "off"}
        ``live`` needs a terminal; ``plain`` prints at most one line every 2 s.
    stream : file, optional
        Where to write (default: ``sys.stderr``).
    """

    def __init__(self, label: str, mode: str, stream: IO[str] | None = None) -> None:
        self.label = label
        self.mode = mode
        self.stream = stream if stream is not None else sys.stderr
        self._status = None
        self._console: Any = None
        self.hinted = ""  # the hint (a likely infinite state space) already shown, once
        self._started = time.monotonic()
        self._last_plain = self._started
        if mode == "live":
            try:
                from rich.console import Console
            except ImportError:  # rich is a dependency, but a broken install should still check models
                self.mode = "plain"
            else:
                console = self._console = Console(file=self.stream, highlight=False)
                self._status = console.status(self._text({}), spinner="dots")
                self._status.start()

    @classmethod
    def for_options(cls, label: str, quiet: bool, stream: IO[str] | None = None) -> ProgressDisplay:
        """The display that suits ``stream``: off with ``quiet``, live on a terminal, plain otherwise."""
        stream = stream if stream is not None else sys.stderr
        if quiet:
            return cls(label, "off", stream)
        try:
            tty = stream.isatty() and os.environ.get("TERM") != "dumb"
        except (AttributeError, ValueError):
            tty = False
        return cls(label, "live" if tty else "plain", stream)

    def _text(self, info: dict) -> str:
        states = info.get("states", 0)
        seconds = info.get("seconds", time.monotonic() - self._started)
        parts = [f"checking {self.label}: {states} states", f"{info.get('transitions', 0)} transitions"]
        depth = info.get("depth", info.get("max_depth"))
        if depth is not None:
            parts.append(f"depth {depth}")
        rate = states / seconds if seconds > 0 else 0.0
        parts += [f"{rate:.0f} states/s", f"{info.get('live_snapshots', 0)} live snapshots"]
        workers = info.get("workers")
        if workers:  # the Ray backend: states expanded by each worker, and how many it holds to expand
            load = " ".join(f"{w.get('expanded', 0)}/{w.get('frontier', 0)}" for w in workers)
            parts.append(f"{len(workers)} workers (expanded/queued: {load})")
        if info.get("violations"):
            parts.append(f"{info['violations']} violation{'s' if info['violations'] > 1 else ''}")
        parts.append(f"{seconds:.1f}s")
        return ", ".join(parts)

    def update(self, info: dict) -> None:
        """The ``progress`` callback of check(): called about every 0.25 s."""
        hint = info.get("hint")
        if hint and hint != self.hinted and self.mode != "off":
            self.hinted = hint  # shown at once, above the live line: the check may go on for long
            if self.mode == "live" and self._console is not None:
                from rich.text import Text

                self._console.print(Text(f"{PROG}: warning: {hint}"))
            else:
                print(f"{PROG}: warning: {hint}", file=self.stream, flush=True)
        if self.mode == "live" and self._status is not None:
            from rich.text import Text

            self._status.update(Text(self._text(info)))
        elif self.mode == "plain":
            now = time.monotonic()
            if now - self._last_plain >= _PLAIN_PROGRESS_INTERVAL:
                self._last_plain = now
                print(f"{PROG}: {self._text(info)}", file=self.stream, flush=True)

    def close(self) -> None:
        """Remove the live display (it is transient); safe to call twice."""
        status, self._status = self._status, None
        if status is not None:
            status.stop()


# --------------------------------------------------------------------------- reports


def _banner(text: str, stream: IO[str]) -> str:
    line = "=" * 72
    out = f"{line}\n{text}\n{line}"
    try:
        colour = stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        colour = False
    return f"\x1b[1;31m{out}\x1b[0m" if colour else out


def format_steps(trace: Trace) -> str:
    """The trace's steps, numbered, with actor, operation and ``file:line``."""
    lines = []
    for i, s in enumerate(trace, 1):
        if trace.cycle_start is not None and i - 1 == trace.cycle_start:
            lines.append("  -- loop starts here --")
        where = f"  ({_where.relative(s.where)})" if s.where and not s.to else ""
        lines.append(f"  {i:>3}. {s.text()}{where}")
    if trace.cycle_start is not None:
        lines.append(f"  -- then back to step {trace.cycle_start + 1}, forever --")
    return "\n".join(lines) if lines else "  (the initial state: no step)"


def format_violation(v: Violation, model: Model, target: str, arg_items: Sequence[str], stream: IO[str],
                     transition_timeout: float | None = None) -> str:
    """The human report of one violation: banner, counterexample, state, replay command."""
    when = v.when
    # Invariants and liveness properties have names; the other kinds are about an actor (or the whole model).
    if v.kind in ("invariant", "liveness"):
        about = f", property {v.name!r}"
    elif v.name and v.name != v.kind:
        about = f", actor {v.name}"
    else:
        about = ""
    out = [_banner(f"VIOLATION ({v.kind}): {v.message}", stream),
           f"model {model!r}{about}, {when}",
           "", "Counterexample:", format_steps(v.trace)]
    if v.details:
        out += ["", v.details.rstrip()]
    if v.state is not None:
        out += ["", f"{v.state_heading}:", format_state(v.state)]
    out += ["", "Replay it with:", "  " + replay_command(target, v.trace.token, arg_items, transition_timeout)]
    return "\n".join(out)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.hex()
    return str(obj)


def json_report(result: CheckResult, model: Model, target: str, arg_items: Sequence[str],
                transition_timeout: float | None = None) -> dict[str, Any]:
    """The ``--json`` report: stable keys, documented in docs/cli.md."""
    s = result.stats
    m = s.memory
    return {
        "model": repr(model),
        "target": target,
        "ok": result.ok,
        "complete": result.complete,
        "incomplete": list(result.incomplete),
        "stats": {
            "states": s.states,
            "transitions": s.transitions,
            "max_depth": s.max_depth,
            "seconds": round(s.seconds, 6),
            "setup_seconds": round(s.setup_seconds, 6),
            "reduction": s.reduction,
            "skipped": s.skipped,
            "symmetry": dict(s.symmetry),
            "memory": {
                "peak_snapshots": m.peak_snapshots,
                "private_bytes": m.private_bytes,
                "logical_bytes": m.logical_bytes,
                "sharing": m.sharing,
                "private_per_snapshot": m.private_per_snapshot,
                "sampled_snapshots": m.sampled_snapshots,
            },
        },
        "violations": [
            {
                "kind": v.kind,
                "name": v.name,
                "message": v.message,
                "details": v.details,
                "state": format_state(v.state) if v.state is not None else None,
                "trace": {
                    "token": v.trace.token,
                    "cycle_start": v.trace.cycle_start,
                    "steps": [{"actor": st.actor, "label": st.label, "where": st.where} for st in v.trace],
                },
                "replay": replay_command(target, v.trace.token, arg_items, transition_timeout),
            }
            for v in result.violations
        ],
    }


# --------------------------------------------------------------------------- graph export


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_dot(graph: Any, stream: IO[str], title: str = "") -> None:
    """Write the state graph in Graphviz DOT.

    Nodes are labelled by state number; violating states are red, the initial
    state has a thick border and states where every actor returned are double
    circles.  Edges carry their transition label(s), one per line.
    """
    w = stream.write
    w("digraph forkcheck {\n")
    if title:
        w(f"  graph [label={_dot_quote(title)}, labelloc=t, fontname=\"Helvetica\"];\n")
    w('  node [shape=circle, fontname="Helvetica"];\n')
    w('  edge [fontname="Helvetica", fontsize=10];\n')
    def node_id(n: Any) -> str:
        return str(n) if isinstance(n, int) else _dot_quote(str(n))

    for n, data in graph.nodes(data=True):
        attrs = [f"label={_dot_quote(str(n))}"]
        if n == 0:
            attrs.append("penwidth=3")
        if data.get("done"):
            attrs.append("shape=doublecircle")
        bad = data.get("violations") or []
        if bad:
            attrs += ["color=red", "fontcolor=red", "style=filled", 'fillcolor="#ffd6d6"',
                      f"tooltip={_dot_quote(', '.join(map(str, bad)))}"]
        w(f"  {node_id(n)} [{', '.join(attrs)}];\n")
    for a, b, data in graph.edges(data=True):
        labels = data.get("labels") or ([data["label"]] if data.get("label") else [])
        w(f"  {node_id(a)} -> {node_id(b)} [label={_dot_quote(chr(10).join(map(str, labels)))}];\n")
    w("}\n")


def _scalar(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value
    if value is None:
        return ""
    return json.dumps(value, default=_jsonable, sort_keys=True)


def graphml_graph(graph: Any, title: str = "") -> Any:
    """A copy of the state graph whose attributes are scalars (lists, dicts and steps become JSON text)."""
    import networkx as nx

    out = nx.DiGraph()
    if title:
        out.graph["model"] = title
    for n, data in graph.nodes(data=True):
        out.add_node(n, **{k: _scalar(v) for k, v in data.items()})
    for a, b, data in graph.edges(data=True):
        out.add_edge(a, b, **{k: _scalar(v) for k, v in data.items()})
    return out


def graph_json(graph: Any, title: str = "") -> dict[str, Any]:
    """The state graph as node-link JSON with stable keys (documented in docs/cli.md)."""
    nodes = []
    for n, d in graph.nodes(data=True):
        nodes.append({
            "id": n,
            "fingerprint": d.get("fingerprint", ""),
            "violations": list(d.get("violations", [])),
            "enabled": list(d.get("enabled", [])),
            "done": bool(d.get("done", False)),
            "labels": dict(d.get("labels", {})),
        })
    edges = []
    for a, b, d in graph.edges(data=True):
        edges.append({
            "source": a,
            "target": b,
            "label": d.get("label", ""),
            "labels": list(d.get("labels", [])),
            "actor": d.get("actor", ""),
            "steps": [{"index": s.index, "actor": s.actor, "label": s.label, "where": s.where,
                       "fingerprint": s.fingerprint} for s in d.get("steps", [])],
        })
    return {"format": "forkcheck-graph", "version": 1, "model": title, "directed": True, "initial": 0,
            "nodes": nodes, "edges": edges}


def export_graph(graph: Any, fmt: str, path: str, title: str) -> None:
    """Write the state graph to ``path`` (``-`` is stdout) in ``fmt`` (dot, graphml or json)."""
    if fmt == "graphml":
        import networkx as nx

        g = graphml_graph(graph, title)
        if path == "-":
            sys.stdout.flush()
            nx.write_graphml(g, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            nx.write_graphml(g, path)
        return
    with _open_output(path) as f:
        if fmt == "dot":
            write_dot(graph, f, title)
        else:
            json.dump(graph_json(graph, title), f, indent=2, default=_jsonable)
            f.write("\n")


@contextlib.contextmanager
def _open_output(path: str) -> Iterator[IO[str]]:
    """``open(path, "w")``, or stdout (flushed, left open) for ``-``."""
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
    else:
        with open(path, "w", encoding="utf-8") as f:
            yield f


def _check_output_paths(outputs: dict[str, str | None]) -> None:
    """Fail before exploring, not after, when an output cannot be written."""
    dashes = [opt for opt, path in outputs.items() if path == "-"]
    if len(dashes) > 1:
        raise CliError(f"{' and '.join(dashes)} both write to stdout (-): send at most one of them to stdout")
    for opt, path in outputs.items():
        if not path or path == "-":
            continue
        directory = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise CliError(f"{opt} {path}: is a directory; give a file name")
        if not os.path.isdir(directory):
            raise CliError(f"{opt} {path}: the directory {directory} does not exist; create it or give another path")
        if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise CliError(f"{opt} {path}: not writable; give a path you can write to")


# --------------------------------------------------------------------------- commands


def _check_options(args: argparse.Namespace, progress: Callable[[dict], None] | None) -> CheckOptions:
    """The CheckOptions the flags give: those not given keep CheckOptions' defaults."""
    given = {name: getattr(args, name) for name in OPTION_FLAGS if getattr(args, name) is not None}
    return CheckOptions(**given, progress=progress)


def _explore(args: argparse.Namespace, outputs: dict[str, str | None]) -> int:
    """check and graph: explore, write the requested files, report; the exit status."""
    kwargs = parse_model_args(args.arg)
    target = load_target(args.target)
    model = bind_model(target.obj, kwargs)
    _check_output_paths(outputs)
    from ._check.search import check  # imported late: input errors are reported without loading trio and networkx

    # With some output on stdout (-), the human report moves to stderr so stdout stays parseable.
    human = sys.stderr if "-" in outputs.values() else sys.stdout

    display = ProgressDisplay.for_options(repr(model), args.quiet)
    interrupted = None
    from ._errors import ForkcheckWarning, UnboundedWarning

    with warnings.catch_warnings(record=True) as caught:
        # Every forkcheck warning is shown as one forkcheck line, after the progress display, not
        # as Python's two-line warning pointing into a source file.
        warnings.simplefilter("always", ForkcheckWarning)
        try:
            result = check(model, _check_options(args, None if display.mode == "off" else display.update))
        except Interrupted as exc:
            # Ctrl-C or SIGTERM: report what was found so far (every process has ended already).
            result, interrupted = exc.result, exc
        finally:
            display.close()
    for w in caught:
        if issubclass(w.category, UnboundedWarning) and str(w.message) == display.hinted:
            continue  # already shown by the progress display, when it was given
        if issubclass(w.category, ForkcheckWarning):
            print(f"{PROG}: warning: {w.message}", file=sys.stderr, flush=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)

    for opt, path in outputs.items():
        if not path:
            continue
        try:
            if opt == "--json":
                with _open_output(path) as f:
                    json.dump(json_report(result, model, args.target, args.arg, args.transition_timeout), f, indent=2,
                              default=_jsonable)
                    f.write("\n")
            else:
                fmt = {"--dot": "dot", "--graphml": "graphml"}.get(opt) or args.format
                export_graph(result.graph, fmt, path, repr(model))
        except BrokenPipeError:
            raise  # the reader of stdout left: main() ends quietly
        except OSError as exc:
            raise CliError(f"{opt} {path}: cannot write it: {exc.strerror or exc}") from exc

    for v in result.violations:
        print(format_violation(v, model, args.target, args.arg, human, args.transition_timeout), file=human)
        print(file=human)
    for name, witness in result.discoveries.items():
        found = "no reachable state satisfies it" if witness is None else \
            f"witness in {len(witness)} step{'s' if len(witness) != 1 else ''}: forkcheck replay {shlex.quote(args.target)} {witness.token}"
        print(f"sometimes {name!r}: {found}", file=human)
    print(result.summary(), file=human, flush=True)
    if interrupted is not None:
        print(f"{PROG}: interrupted by {interrupted.signal_name}: the counts above are partial", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED if interrupted.signal_name == "SIGINT" else 128 + signal.SIGTERM
    return EXIT_OK if result.ok else EXIT_VIOLATION


def cmd_check(args: argparse.Namespace) -> int:
    """``forkcheck check``: explore the model, report violations; 0 no violation, 1 violation."""
    return _explore(args, {"--json": args.json, "--dot": args.dot, "--graphml": args.graphml})


def cmd_graph(args: argparse.Namespace) -> int:
    """``forkcheck graph``: explore the model and export its state graph in the chosen format."""
    if args.format is None:
        suffix = os.path.splitext(args.output)[1].lower()
        args.format = _GRAPH_SUFFIXES.get(suffix)
        if args.format is None:
            raise CliError(f"-o {args.output}: cannot tell the format from the file name; "
                           f"give --format {'|'.join(_GRAPH_FORMATS)}")
    return _explore(args, {"-o": args.output})


def cmd_replay(args: argparse.Namespace) -> int:
    """``forkcheck replay``: re-execute a trace, printing each step and the state after it.

    Returns 1 when the replayed trace ends in a violation or closes the loop of
    a lasso (a liveness counterexample), 0 otherwise; a trace that does not
    replay raises NondeterminismError (also 1, see :func:`main`), and a step
    that reaches a model error (an invariant that raises) raises ModelError
    (2) after the steps before it are printed.
    """
    trace = Trace.from_token(args.token)  # a damaged token fails before the model is loaded
    kwargs = parse_model_args(args.arg)
    target = load_target(args.target, trace.module)
    model = bind_model(target.obj, kwargs)
    if args.step is not None and args.step > len(trace):
        raise CliError(f"--step {args.step}: the trace has {len(trace)} step{'s' if len(trace) != 1 else ''}; "
                       f"give 0 (the initial state) to {len(trace)}")
    from ._check.search import replay  # imported late: input errors are reported without loading trio

    try:
        rep = replay(model, trace, transition_timeout=args.transition_timeout)
    except (ModelError, UsageError) as exc:
        done = getattr(exc, "replay", None)
        if done is not None:  # the steps that replayed, then the error (main prints it)
            print("\n".join(_replay_lines(done, trace, model, args.step, ended=False)).rstrip("\n"), flush=True)
        raise
    print("\n".join(_replay_lines(rep, trace, model, args.step)).rstrip("\n"), flush=True)
    return EXIT_VIOLATION if rep.violations or rep.cycle_start is not None else EXIT_OK


def _replay_lines(rep: Any, trace: Trace, model: Any, only: int | None, ended: bool = True) -> list[str]:
    """The text of ``forkcheck replay``: steps and states (only step ``only`` when given), then the verdict.

    ``ended`` is False when the replay stopped at a model error: the verdict is then left to the error.
    """

    def show_violations(viols: list) -> list[str]:
        return [f"  VIOLATION ({kind}): {message}" for kind, _name, message in map(_violation_fields, viols)]

    n = len(trace)
    cycle = getattr(rep, "cycle_start", None)
    loop = "" if cycle is None else f"step {n}" if cycle + 1 == n else f"steps {cycle + 1}-{n}"
    out: list[str] = []
    if only is None:
        lasso = "" if cycle is None else f" (a lasso: {loop} loop{'s' if cycle + 1 == n else ''} forever)"
        out += [f"Replaying {n} step{'s' if n != 1 else ''} of {model!r}{lasso}", ""]
    if only in (None, 0):
        out += ["Initial state:", format_state(rep.initial), ""]
    for k, st in enumerate(rep, 1):
        if only is not None and k != only:
            continue
        if cycle is not None and k == cycle + 1:
            out.append("-- loop starts here --")
        if getattr(st, "to", ""):  # an asyncio program's step: where it resumed, and where it stopped
            out.append(f"Step {k}. {st.label} -> {st.to}")
        else:
            where = f"  ({_where.relative(st.where)})" if st.where else ""
            out.append(f"Step {k}. {st.actor}: {st.label}{where}")
        out.append(format_state(st.state) if st.state is not None else "  (no state: the snapshot "
                   "process did not survive this step)")
        out += show_violations(st.violations)
        out.append("")
    notes = getattr(rep, "notes", [])
    if only is None:
        out += [f"Note: {note}" for note in notes]
    if only is None and ended:
        if rep.violations:
            out.append(f"The trace reproduces {len(rep.violations)} violation"
                       f"{'s' if len(rep.violations) > 1 else ''}: "
                       + "; ".join(message for _k, _n, message in map(_violation_fields, rep.violations)))
        elif cycle is not None:
            out.append(f"The trace is a lasso: step {n} leads back to the state before step {cycle + 1}, so {loop} "
                       f"repeat{'s' if cycle + 1 == n else ''} forever (a liveness counterexample; replay checks that "
                       "the loop closes, not the liveness property, which `forkcheck check` reports).")
        else:
            out.append("No violation in the last state (replay reports invariants, assertions, exceptions and "
                       "deadlocks of the states it passes; not liveness).")
    return out


def _violation_fields(v: Any) -> tuple[str, str, str]:
    """(kind, name, message) of a replayed violation: a tuple today, an object with those attributes tomorrow."""
    if isinstance(v, tuple):
        return (str(v[0]), str(v[1]), str(v[2])) if len(v) >= 3 else (str(v[0]), "", str(v[-1]))
    return (str(getattr(v, "kind", "violation")), str(getattr(v, "name", "")), str(getattr(v, "message", v)))


def cmd_list(args: argparse.Namespace) -> int:
    """``forkcheck list``: print each model of a file, ``name(signature)``, one per line."""
    source, attr = split_target(args.target)
    if attr is not None:
        raise CliError(f"list takes a file or module, not a model: write forkcheck list {source}")
    module = load_source(source)
    models = find_models(module)
    if not models:
        print(f"{PROG}: {source} defines no model (a model is a @forkcheck.model function or a forkcheck.Model "
              "at module level)", file=sys.stderr)
    for name, obj in models.items():
        print(model_signature(name, obj))
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": cmd_check, "replay": cmd_replay, "graph": cmd_graph, "list": cmd_list,
    "bench": lambda args: __import__("forkcheck._bench", fromlist=["main"]).main(args.bench_args),
}


# --------------------------------------------------------------------------- errors and main


def _exc_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _user_location(exc: BaseException, path: str | None) -> str:
    """`` (file.py:12)`` for the innermost frame of the user's file (or of any non-forkcheck file)."""
    frames: list[traceback.FrameSummary] = traceback.extract_tb(exc.__traceback__)
    here = os.path.dirname(os.path.abspath(__file__))
    frames = [f for f in frames if (f.filename == path if path else not f.filename.startswith(here))
              and not f.filename.startswith("<frozen")]
    if not frames:
        return ""
    f = frames[-1]
    return f" ({os.path.basename(f.filename)}:{f.lineno})"


def _one_line(message: str, more: str = "run with --debug for the details") -> str:
    """The first line of a message; when more was cut, a pointer to where the rest is."""
    lines = [ln for ln in str(message).strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    first = lines[0]
    if len(lines) > 1:
        reached = re.search(r"\(reached by fc1:[^)\s]+\)", str(message))
        if reached and reached.group(0) not in first:
            first += " " + reached.group(0)
        first += f" ({more})"
    return first


def _error(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; an exception group from trio's nurseries is re-raised as the exception that matters."""
    try:
        return command(args)
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        # Ctrl-C first, then forkcheck's own errors (they carry the message for the user), then the rest.
        for kinds in ((KeyboardInterrupt,), (ForkcheckError,), (BaseException,)):
            for leaf in leaves:
                if isinstance(leaf, kinds):
                    raise leaf from group
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``forkcheck`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 no violation, 1 a violation found (or a trace that
        does not replay), 2 a usage or input error, 3 an internal error, 130
        interrupted.

    Examples
    --------
    >>> main(["check", "no/such/file.py"])
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # known before parsing, so that parsing errors honour it too
    if debug:
        # Snapshot processes then write to this terminal instead of a temporary file.
        os.environ["FORKCHECK_DEBUG"] = "1"
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help and --version
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        return _run(_COMMANDS[args.command], args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except CliError as exc:
        _error(str(exc), debug)
        return EXIT_USAGE
    except UsageError as exc:
        _error(_one_line(str(exc)), debug)
        return EXIT_USAGE
    except ModelError as exc:
        # The message may end with the model's own traceback: keep its innermost location on the line.
        frames = re.findall(r'File "([^"]+)", line (\d+)', str(exc))
        where = f"{_where.relative(f'{frames[-1][0]}:{frames[-1][1]}')}; " if frames else ""
        _error(_one_line(str(exc), f"{where}run with --debug to see the model's traceback"), debug)
        return EXIT_USAGE
    except NondeterminismError as exc:
        # The message lists the likeliest cause first: other --arg values than the check's.
        _error("the trace does not replay: " + _one_line(str(exc)), debug)
        return EXIT_VIOLATION
    except BrokenPipeError:
        # The reader of stdout went away (| head): nothing left to tell it.  Point stdout at /dev/null
        # so that the interpreter's final flush does not fail again, and exit like a process SIGPIPE ended.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, exit 3
        message = _one_line(str(exc)) or type(exc).__name__
        if not isinstance(exc, InternalError):
            message = f"{type(exc).__name__}: {message} (this is a bug in forkcheck; please report it with the " \
                      "output of the same command with --debug)"
        _error(f"internal error: {message}", debug)
        return EXIT_INTERNAL
