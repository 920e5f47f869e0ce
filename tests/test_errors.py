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


def test_spawn_given_a_called_actor():
    # fc.spawn(sender()) used to say "must be an async function" of an async function
    @fc.model
    def m():
        async def sender(n):
            await fc.checkpoint()

        fc.spawn(sender(1))

    with pytest.raises(fc.UsageError, match=r"got a coroutine, sender\(...\) already called: pass the function and "
                                            r"its arguments, fc.spawn\(sender, arg, ...\)") as e:
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

    with pytest.raises(fc.ModelError, match=r"invariant 'x is one' raised KeyError at test_errors.py:\d+: 'x'") as e:
        m.check()
    one_line(e)
    # the model's traceback travels as a note: shown where tracebacks are shown (the CLI's --debug)
    (note,) = e.value.__notes__
    assert 'fc.invariant(lambda: d["x"] == 1, name="x is one")' in note and note.endswith("KeyError: 'x'")


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
    ({"strategy": "astar"}, "strategy='astar' is not a strategy; use one of: bfs, dfs, random"),
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


# --------------------------------------------------------------------------- silent passes (issue 13, section 4)


def _line_of(marker: str) -> int:
    """The line of this file that holds ``marker`` in a comment."""
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if line.rstrip().endswith(f"# {marker}"))


@fc.model
def lost_update_without_await(n=2):
    """The guide's lost update, with the interleaving point written without ``await``."""
    state = {"count": 0, "finished": 0}

    async def increment():
        tmp = state["count"]
        fc.checkpoint()  # no await
        state["count"] = tmp + 1
        state["finished"] += 1

    for i in range(n):
        fc.spawn(increment, name=f"inc{i}")
    fc.invariant(lambda: state["finished"] < n or state["count"] == n, name="no lost update")


def test_a_request_never_awaited_is_an_error_naming_its_line():
    with pytest.raises(fc.UsageError) as e:
        lost_update_without_await.check()
    text = one_line(e)
    assert text.startswith("in actor inc0: `fc.checkpoint()` at ")
    assert f"{__file__}:{_line_of('no await')} " in text
    assert text.endswith("makes a request that is not awaited in the step that makes it, so it does nothing "
                         "(no interleaving point, no value): write `await fc.checkpoint()`")


_PRIMITIVES = {
    "choose": lambda p: fc.choose([1, 2]),
    "when": lambda p: fc.when(lambda: True),
    "get": lambda p: p["box"].get(),
    "recv": lambda p: p["net"].recv("me"),
    "acquire": lambda p: p["lock"].acquire(),
    "semaphore": lambda p: p["sem"].acquire(),
    "wait": lambda p: p["event"].wait(),
}


@pytest.mark.parametrize("kind", sorted(_PRIMITIVES))
def test_every_primitive_not_awaited_is_an_error(kind):
    make = _PRIMITIVES[kind]

    @fc.model
    def m():
        p = {"box": fc.Mailbox(), "net": fc.Network(), "lock": fc.Lock(), "sem": fc.Semaphore(), "event": fc.Event()}

        async def a():
            await fc.checkpoint()
            make(p)
            await fc.checkpoint()

        fc.spawn(a)

    with pytest.raises(fc.UsageError, match=r"in actor a: `.*` at .*:\d+ makes a request that is not awaited in the step that makes it") as e:
        m.check()
    one_line(e)


def test_a_request_made_in_one_step_and_awaited_in_a_later_one_is_an_error():
    @fc.model
    def m():
        box = fc.Mailbox()

        async def a():
            r = box.get()  # kept for later
            box.put(1)
            await fc.checkpoint()
            await r

        fc.spawn(a)

    with pytest.raises(fc.UsageError, match=f"in actor a: `box.get\\(\\)` at .*:{_line_of('kept for later')} makes "
                                            "a request that is not awaited in the step .*: write `await box.get\\(\\)`"):
        m.check()


def test_a_request_made_in_setup_is_an_error():
    @fc.model
    def m():
        async def a():
            await fc.checkpoint()

        fc.spawn(a)
        fc.checkpoint()  # in setup

    with pytest.raises(fc.UsageError, match=f"in the setup function: `fc.checkpoint\\(\\)` at .*:{_line_of('in setup')} "
                                            "makes a request, which only an actor can await: move it into an actor, with "
                                            "`await fc.checkpoint\\(\\)`"):
        m.check()


def test_a_request_spread_over_lines_is_named_by_its_kind():
    @fc.model
    def m():
        async def a():
            fc.choose(  # over lines
                [1, 2])
            await fc.checkpoint()

        fc.spawn(a)

    with pytest.raises(fc.UsageError, match=f"in actor a: a choose request at .*:{_line_of('over lines')} makes a "
                                            "request that is not awaited .*: write `await` before it$"):
        m.check()


def test_an_async_helper_called_without_await_is_an_error():
    @fc.model
    def m():
        s = {"n": 0}

        async def bump():
            tmp = s["n"]
            await fc.checkpoint()
            s["n"] = tmp + 1

        async def a():
            bump()  # helper without await
            await fc.checkpoint()

        fc.spawn(a)

    with pytest.raises(fc.UsageError) as e:
        m.check()
    assert one_line(e) == (f"in actor a: coroutine 'test_an_async_helper_called_without_await_is_an_error.<locals>.m."
                           f"<locals>.bump' was never awaited (at {__file__}:{_line_of('helper without await')}): an "
                           "async function called without `await` does not run at all; write `await` before the call")


def test_requests_awaited_in_the_step_that_makes_them_are_fine():
    @fc.model
    def m():
        box, lock, sem = fc.Mailbox(), fc.Lock(), fc.Semaphore(1)

        async def a():
            r = box.get()
            box.put(1)
            assert await r == 1
            async with lock:
                await fc.checkpoint()
            async with sem:
                await fc.when(lambda: True)
            await fc.choose([1, 2])

        fc.spawn(a)

    r = m.check()
    assert r.ok and r.complete and r.stats.states == 7


def test_a_model_that_spawns_no_actor_is_an_error_naming_its_setup():
    @fc.model  # no actor
    def idle():
        fc.invariant(lambda: True, name="trivially")

    with pytest.raises(fc.UsageError) as e:
        idle.check()
    assert one_line(e) == (f"the setup function idle ({__file__}:{_line_of('no actor')}) spawned no actor, so there is "
                           "nothing to check: start the model's actors with fc.spawn(fn) in it")


@fc.model
def asyncio_in_a_model(kind):
    import asyncio
    import threading

    lock = asyncio.Lock() if kind == "asyncio.Lock" else threading.Lock()

    async def actor():
        if kind == "asyncio.sleep":
            await asyncio.sleep(1)
        async with lock:
            await fc.checkpoint()

    fc.spawn(actor, name="a")
    fc.spawn(actor, name="b")


@pytest.mark.parametrize("kind, says", [
    ("asyncio.sleep", r"in actor a: asyncio used at test_errors.py:\d+ \(await asyncio.sleep\(1\)\): asyncio's "
                      r"primitives need an event loop.*use fc.checkpoint\(\), fc.Lock"),
    ("asyncio.Lock", r"in actor b: asyncio used at test_errors.py:\d+ \(async with lock:\)"),
    ("threading.Lock", r"does not support the asynchronous context manager protocol at test_errors.py:\d+ "
                       r"\(async with lock:\): a threading lock cannot be held across an await; use fc.Lock"),
])
def test_asyncio_and_threading_primitives_in_a_model_are_named(kind, says):
    # They used to read as the program's own exceptions: "no running event loop", an AttributeError
    # from inside asyncio, Python's TypeError.
    with pytest.raises(fc.UsageError, match=says) as e:
        asyncio_in_a_model(kind).check()
    one_line(e)


def test_a_bare_yield_is_named_with_its_line():
    @fc.model
    def m():
        import asyncio

        async def a():
            await asyncio.sleep(0)

        fc.spawn(a, name="a")

    (v,) = m.check().violations
    assert v.kind == "exception"
    assert "awaited None at test_errors.py:" in v.message and "a bare yield, as asyncio.sleep(0) makes" in v.message
