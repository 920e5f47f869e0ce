"""Bad input raises a ForkcheckError subclass whose one-line message says what to do."""

import threading

import pytest

import forkcheck as fc


def one_line(exc_info):
    text = str(exc_info.value)
    assert "\n" not in text, text
    return text


def test_spawn_and_choose_outside_a_model():
    async def a():
        pass

    with pytest.raises(fc.UsageError, match="outside a model") as e:
        fc.spawn(a)
    one_line(e)
    with pytest.raises(fc.UsageError, match="fc.choose"):
        fc.choose([1, 2])
    with pytest.raises(fc.UsageError, match="fc.invariant"):
        fc.invariant(lambda: True)


def test_non_async_actor():
    @fc.model
    def m():
        def not_async():
            pass

        fc.spawn(not_async)

    with pytest.raises(fc.UsageError, match="must be an async function; define it with `async def`") as e:
        m.check()
    one_line(e)


def test_async_setup_function_is_refused_at_decoration():
    with pytest.raises(fc.UsageError, match="must be a plain `def`"):
        @fc.model
        async def m():
            pass


@pytest.mark.parametrize("options, hint", [
    ({1, 2}, "sets and dicts have no deterministic order"),
    (42, "options must be a list"),
    ([], "empty sequence"),
])
def test_choose_given_a_non_sequence(options, hint):
    @fc.model
    def m():
        async def a():
            await fc.choose(options)

        fc.spawn(a)

    with pytest.raises(fc.UsageError, match=hint) as e:
        m.check()
    one_line(e)


def test_choose_callable_returning_a_set_in_a_later_state():
    @fc.model
    def m():
        async def a():
            await fc.checkpoint()
            await fc.choose(lambda: {1, 2})

        fc.spawn(a)

    with pytest.raises(fc.UsageError, match="returned set"):
        m.check()


def test_an_invariant_that_raises_is_a_model_error():
    @fc.model
    def m():
        d = {}

        async def a():
            await fc.checkpoint()
            d["x"] = 1

        fc.spawn(a)
        fc.invariant(lambda: d["x"] == 1, name="x is one")

    with pytest.raises(fc.ModelError, match="invariant 'x is one' raised KeyError") as e:
        m.check()
    one_line(e)


def test_setup_that_raises_is_a_model_error_with_its_traceback():
    @fc.model
    def m():
        raise RuntimeError("boom")

    with pytest.raises(fc.ModelError, match="raised RuntimeError: boom"):
        m.check()


def test_unpicklable_model_arguments():
    @fc.model
    def m(lock):
        pass

    with pytest.raises(fc.UsageError, match="must be picklable") as e:
        m(threading.Lock()).check()
    one_line(e)


def test_wrong_model_arguments():
    @fc.model
    def m(n=1):
        pass

    with pytest.raises(fc.UsageError, match="unexpected keyword argument 'x'"):
        m(x=2)


@pytest.mark.parametrize("options, fragment", [
    ({"strategy": "astar"}, "strategy='astar' is not a strategy; use one of: dfs, bfs, random"),
    ({"jobs": 0}, "jobs=0: give a whole number >= 1"),
    ({"max_depth": -1}, "max_depth=-1"),
    ({"fingerprint": "md5"}, "fingerprint='md5'"),
    ({"colour": "red"}, "unknown option 'colour'"),
    ({"transition_timeout": 0}, "transition_timeout=0"),
    ({"fairness": "maybe"}, "fairness='maybe'"),
    ({"huge_pages": "yes"}, "huge_pages='yes': give True"),
    ({"huge_pages": True, "fingerprint": "pages"}, "huge_pages=True cannot be combined with fingerprint='pages'"),
])
def test_unknown_options_and_bad_values(options, fragment):
    @fc.model
    def m():
        pass

    with pytest.raises(fc.UsageError) as e:
        m.check(**options)
    assert fragment in one_line(e)


def test_not_a_model():
    with pytest.raises(fc.UsageError, match="expected a forkcheck model"):
        fc.replay(lambda: None, fc.Trace().token)


def test_every_error_is_a_forkcheck_error():
    for cls in (fc.UsageError, fc.ModelError, fc.NondeterminismError, fc.PropertyViolation, fc.InternalError):
        assert issubclass(cls, fc.ForkcheckError)
    assert "bug in forkcheck" in str(fc.InternalError("x"))
