"""Liveness: eventually, always_eventually, leads_to, sometimes, under weak, strong and no fairness."""

from __future__ import annotations

import pytest

import forkcheck as fc
from forkcheck import LivenessNotChecked

# --------------------------------------------------------------------------- models


@fc.model
def starvation():
    """A spinner can starve the worker, but only if the scheduler is unfair."""
    s = {"done": False}

    async def spinner():
        while True:
            await fc.checkpoint()

    async def worker():
        await fc.checkpoint()
        s["done"] = True

    fc.spawn(spinner)
    fc.spawn(worker)
    fc.eventually(lambda: s["done"], name="worker finishes")


@fc.model
def lost_wakeup():
    """The notifier's pulse can come and go while the waiter is not looking: it spins forever."""
    s = {"signal": False, "woken": False}

    async def waiter():
        while not s["signal"]:
            await fc.checkpoint()
        s["woken"] = True

    async def notifier():
        await fc.checkpoint()
        s["signal"] = True
        await fc.checkpoint()
        s["signal"] = False

    fc.spawn(waiter)
    fc.spawn(notifier)
    fc.eventually(lambda: s["woken"], name="waiter wakes")


@fc.model
def ping_pong():
    """Two players warm up, then pass the ball forever: nobody ever scores."""
    s = {"ball": "a", "scored": False}

    async def player(me, other):
        await fc.checkpoint()  # warming up: the prefix of the lasso
        while True:
            await fc.when(lambda: s["ball"] == me)
            s["ball"] = other

    fc.spawn(player, "a", "b", name="a")
    fc.spawn(player, "b", "a", name="b")
    fc.eventually(lambda: s["scored"], name="someone scores")


@fc.model
def election(ids=(2, 3, 1)):
    """Chang-Roberts leader election on a unidirectional ring of FIFO mailboxes, with termination."""
    n = len(ids)
    boxes = [fc.Mailbox(f"box{i}") for i in range(n)]
    s = {"leader": None, "known": [None] * n}

    async def node(i):
        me, right = ids[i], boxes[(i + 1) % n]
        right.put(("elect", me))
        while True:
            kind, v = await boxes[i].get()
            if kind == "elect":
                if v > me:
                    right.put(("elect", v))
                elif v == me:
                    s["leader"] = s["known"][i] = me
                    right.put(("leader", me))
            else:
                if v != me:
                    s["known"][i] = v
                    right.put(("leader", v))
                return

    for i in range(n):
        fc.spawn(node, i, name=f"n{ids[i]}")
    fc.invariant(lambda: s["leader"] in (None, max(ids)), name="the largest id wins")
    fc.eventually(lambda: s["leader"] is not None, name="elected")
    fc.leads_to(lambda: s["leader"] is not None, lambda: None not in s["known"], name="everyone learns")
    return s


@fc.model
def greedy_lock():
    """The hog re-takes the lock at once: polite's acquire is enabled only now and then."""
    lock = fc.Lock("L")
    s = {"wants": False, "got": False}

    async def hog():
        while True:
            async with lock:
                await fc.checkpoint()

    async def polite():
        await fc.checkpoint()
        s["wants"] = True
        async with lock:
            s["got"] = True

    fc.spawn(hog)
    fc.spawn(polite)
    fc.leads_to(lambda: s["wants"], lambda: s["got"], name="polite gets the lock")


@fc.model
def blinker_and_waiter():
    """The waiter needs the light on; the blinker keeps switching it: enabled infinitely often, never continuously."""
    s = {"on": False, "seen": False}

    async def blinker():
        while True:
            s["on"] = not s["on"]
            await fc.checkpoint()

    async def waiter():
        await fc.when(lambda: s["on"])
        s["seen"] = True

    fc.spawn(blinker)
    fc.spawn(waiter)
    fc.eventually(lambda: s["seen"], name="waiter sees the light")
    fc.always_eventually(lambda: s["on"], name="light on again and again")


@fc.model
def request_grant():
    """A client keeps asking, a server answers; a ticker could hog the scheduler if it were unfair."""
    s = {"req": False}

    async def client():
        while True:
            s["req"] = True
            await fc.when(lambda: not s["req"])

    async def server():
        while True:
            await fc.when(lambda: s["req"])
            s["req"] = False

    async def ticker():
        while True:
            await fc.checkpoint()

    fc.spawn(client)
    fc.spawn(server)
    fc.spawn(ticker)
    fc.leads_to(lambda: s["req"], lambda: not s["req"], name="served")


@fc.model
def jugs():
    """The Die Hard jugs, with witnesses instead of an invariant."""
    j = {"small": 0, "big": 0}

    def pour(action):
        sm, b = j["small"], j["big"]
        if action == "fill small":
            sm = 3
        elif action == "fill big":
            b = 5
        elif action == "empty small":
            sm = 0
        elif action == "empty big":
            b = 0
        elif action == "small to big":
            moved = min(sm, 5 - b)
            sm, b = sm - moved, b + moved
        else:
            moved = min(b, 3 - sm)
            sm, b = sm + moved, b - moved
        j["small"], j["big"] = sm, b

    async def hands():
        while True:
            pour(await fc.choose(["fill small", "fill big", "empty small", "empty big", "small to big", "big to small"]))

    fc.spawn(hands)
    fc.sometimes(lambda: j["big"] == 4, name="four gallons")
    fc.sometimes(lambda: j["big"] == 6, name="six gallons")
    fc.sometimes(lambda: j["big"] == 0, name="empty")
    return j


# --------------------------------------------------------------------------- helpers


def lasso_recurs(trace) -> bool:
    """The state the loop starts from is the state its last step leads to."""
    start = trace[trace.cycle_start - 1].fingerprint if trace.cycle_start > 0 else None
    return start is None or trace[-1].fingerprint == start


def token_roundtrip(tr) -> bool:
    back = fc.Trace.from_token(tr.token)
    return back == tr and back.cycle_start == tr.cycle_start


def only(r, kind="liveness"):
    vs = [v for v in r.violations if v.kind == kind]
    assert len(vs) == 1, r
    return vs[0]


# --------------------------------------------------------------------------- eventually and fairness


def test_starvation_is_found_without_fairness_only():
    assert starvation.check().ok
    assert starvation.check(fairness="strong").ok
    r = starvation.check(fairness="none")
    v = only(r)
    assert v.name == "worker finishes"
    assert v.message == ("eventually 'worker finishes' fails: a run loops forever without it (cycle of 1 state) "
                         "with no fairness assumption")
    assert v.trace.cycle_start == 0 and [s.actor for s in v.trace] == ["spinner"]
    assert "worker is enabled in the loop but never moves: no fairness is assumed" in v.details
    assert r.complete


@pytest.mark.parametrize("fairness", ["weak", "strong"])
def test_lost_wakeup_loops_forever_even_under_fairness(fairness):
    r = lost_wakeup.check(fairness=fairness)
    v = only(r)
    assert v.message.startswith("eventually 'waiter wakes' fails: a run loops forever without it (cycle of 1 state)")
    tr = v.trace
    # The loop is the waiter spinning; before it the notifier raised and lowered the signal.
    assert [s.actor for s in tr[tr.cycle_start:]] == ["waiter"]
    assert [s.actor for s in tr[:tr.cycle_start]].count("notifier") == 2
    assert lasso_recurs(tr)
    assert "loop starts here" in v.format()


def test_counterexample_that_revisits_a_state_is_a_lasso():
    v = only(ping_pong.check())
    tr = v.trace
    assert tr.cycle_start == 2
    assert sorted(s.actor for s in tr[:2]) == ["a", "b"]  # the warm-ups
    loop = tr[tr.cycle_start:]
    assert len(loop) == 2 and {s.actor for s in loop} == {"a", "b"}
    assert lasso_recurs(tr)
    assert loop[0].fingerprint != loop[1].fingerprint  # two distinct states, the first recurs
    assert "cycle of 2 states" in v.message
    assert token_roundtrip(tr)
    b = only(ping_pong.check(strategy="bfs")).trace  # the lasso is shortest whatever the search order
    assert (b.cycle_start, len(b)) == (tr.cycle_start, len(tr))


def test_replay_follows_a_lasso_token():
    v = only(ping_pong.check())
    steps = fc.replay(ping_pong, v.trace.token)
    assert len(steps) == len(v.trace)
    c = v.trace.cycle_start
    assert steps[c - 1].fingerprint == steps[-1].fingerprint
    assert [s.fingerprint for s in steps] == [s.fingerprint for s in v.trace]


def test_correct_leader_election_eventually_elects():
    for fairness in ("weak", "none"):  # every run is finite: no loop, no fairness needed
        r = election.check(fairness=fairness)
        assert r.ok and r.complete, r
    assert election(ids=(1, 2)).check().ok


def test_a_choice_is_never_assumed_fair():
    @fc.model
    def undecided():
        s = {"stopped": False}

        async def chooser():
            while await fc.choose(["again", "stop"]) == "again":
                pass
            s["stopped"] = True

        fc.spawn(chooser)
        fc.eventually(lambda: s["stopped"], name="stops")

    for fairness in ("weak", "strong"):
        v = only(undecided.check(fairness=fairness))
        # (CPython repeats the loop test at the bottom of the loop: the first iteration is another state.)
        assert {s.label for s in v.trace} == {"choose 'again'"} and len(v.trace[v.trace.cycle_start:]) == 1


def test_a_finite_run_that_ends_without_the_goal_is_a_counterexample():
    @fc.model
    def gives_up():
        s = {"done": False}

        async def worker():
            if await fc.choose(["work", "give up"]) == "work":
                s["done"] = True

        fc.spawn(worker)
        fc.eventually(lambda: s["done"], name="done")
        fc.always_eventually(lambda: s["done"], name="done at the end")

    r = gives_up.check()
    ev, ae = sorted((v for v in r.violations), key=lambda v: v.name)
    assert ev.message == "eventually 'done' fails: a run ends after 1 step (every actor returned) without it"
    assert ev.trace.cycle_start is None and [s.label for s in ev.trace] == ["choose 'give up'"]
    assert ae.message.startswith("always_eventually 'done at the end' fails: a run ends after 1 step")


# --------------------------------------------------------------------------- strong and weak fairness


def test_strong_fairness_helps_an_actor_enabled_infinitely_often_weak_does_not():
    r = blinker_and_waiter.check()
    v = only(r)
    assert v.name == "waiter sees the light" and "under weak fairness" in v.message
    assert {s.actor for s in v.trace[v.trace.cycle_start:]} == {"blinker"}
    assert "waiter is enabled in the loop but never moves" in v.details
    assert lasso_recurs(v.trace)
    assert blinker_and_waiter.check(fairness="strong").ok


def test_always_eventually_holds_when_the_only_loops_come_back_to_it():
    # Even with no fairness, the light comes back on: while it is off only the blinker can move.
    r = blinker_and_waiter.check(fairness="none")
    assert sorted(v.name for v in r.violations) == ["waiter sees the light"]


# --------------------------------------------------------------------------- leads_to


def test_leads_to_holds_under_weak_fairness():
    assert request_grant.check().ok
    assert request_grant.check(fairness="strong").ok
    v = only(request_grant.check(fairness="none"))
    assert v.message.startswith("leads_to 'served' fails: in the initial state p holds, then a run loops forever")
    assert [s.actor for s in v.trace] == ["ticker"] and v.trace.cycle_start == 0


def test_leads_to_fails_under_weak_fairness_and_holds_under_strong():
    v = only(greedy_lock.check())
    assert v.name == "polite gets the lock"
    assert v.message.startswith("leads_to 'polite gets the lock' fails: after step ")
    assert "p holds, then a run loops forever without q (cycle of 2 states) under weak fairness" in v.message
    loop = v.trace[v.trace.cycle_start:]
    assert {s.actor for s in loop} == {"hog"} and len(loop) == 2
    assert any(s.actor == "polite" for s in v.trace[:v.trace.cycle_start])  # polite asked first
    assert lasso_recurs(v.trace)
    assert len(fc.replay(greedy_lock, v.trace.token)) == len(v.trace)
    assert greedy_lock.check(fairness="strong").ok


# --------------------------------------------------------------------------- sometimes


def test_sometimes_gives_a_shortest_witness_or_none():
    r = jugs.check()
    assert r.ok and set(r.discoveries) == {"four gallons", "six gallons", "empty"}
    four = r.discoveries["four gallons"]
    assert len(four) == 6 and four.cycle_start is None
    assert fc.replay(jugs, four.token)[-1].state.view.endswith("'big': 4}")
    assert r.discoveries["six gallons"] is None
    assert r.discoveries["empty"] is not None and len(r.discoveries["empty"]) == 0  # the initial state


# --------------------------------------------------------------------------- the environment and incomplete graphs


def test_the_environment_is_never_assumed_fair():
    @fc.model
    def undelivered():
        net = fc.Network("net", lossy=True)
        net.send("nobody", "hello")

        async def spinner():
            while True:
                await fc.checkpoint()

        fc.spawn(spinner)
        fc.eventually(lambda: not net.in_flight(), name="message gone")

    v = only(undelivered.check())
    assert [s.actor for s in v.trace] == ["spinner"]
    assert "net is enabled in the loop but never moves: the environment is never assumed fair" in v.details


@fc.model
def retransmit():
    """Resend whenever the network is empty; the network may drop every copy."""
    net = fc.Network("net", lossy=True)
    s = {"got": False}

    async def sender():
        while not s["got"]:
            await fc.when(lambda: not net.in_flight("rx") or s["got"])
            if not s["got"]:
                net.send("rx", "m")

    async def receiver():
        await net.recv("rx")
        s["got"] = True

    fc.spawn(sender)
    fc.spawn(receiver)
    fc.eventually(lambda: s["got"], name="delivered")


def test_retransmission_over_a_lossy_network_needs_strong_fairness():
    v = only(retransmit.check())
    loop = v.trace[v.trace.cycle_start:]
    assert sorted(s.actor for s in loop) == ["net", "sender"]
    assert "receiver is enabled in the loop but never moves" in v.details
    assert retransmit.check(fairness="strong").ok


def test_liveness_is_not_judged_when_the_search_stopped_at_a_safety_violation():
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

    with pytest.warns(LivenessNotChecked, match="'five' were not checked: the graph is incomplete \\(stopped at the first violation with 1 state unexpanded\\); check with stop_on_violation=False"):
        r = both_bugs.check(fairness="none")
    assert [v.kind for v in r.violations] == ["assertion"] and not r.complete
    r = both_bugs.check(fairness="none", stop_on_violation=False)
    assert sorted(v.kind for v in r.violations) == ["assertion", "liveness"] and r.complete


def test_liveness_is_not_judged_on_a_bounded_graph():
    with pytest.warns(LivenessNotChecked, match=r"the graph is incomplete \(max_depth=1 cut 2 states\)"):
        r = ping_pong.check(max_depth=1)
    assert r.ok and not r.complete
    with pytest.warns(LivenessNotChecked, match=r"the graph is incomplete \(max_states=2 reached"):
        r = ping_pong.check(max_states=2)
    assert r.ok and not r.complete
    with pytest.warns(LivenessNotChecked, match="no witness was found for 'four gallons'"):
        r = jugs.check(max_depth=2)
    assert r.discoveries["four gallons"] is None and r.discoveries["empty"] is not None


# --------------------------------------------------------------------------- bad use


def test_outside_a_model_or_outside_setup_is_a_usage_error():
    for fn, args in [(fc.eventually, (lambda: True,)), (fc.always_eventually, (lambda: True,)),
                     (fc.leads_to, (lambda: True, lambda: True)), (fc.sometimes, (lambda: True,))]:
        with pytest.raises(fc.UsageError, match=f"fc.{fn.__name__}\\(\\) was called outside a model") as e:
            fn(*args)
        assert "\n" not in str(e.value)

    @fc.model
    def late():
        async def a():
            fc.eventually(lambda: True)
            await fc.checkpoint()

        fc.spawn(a)

    with pytest.raises(fc.UsageError, match="must be called in the model's setup function") as e:
        late.check()
    assert "\n" not in str(e.value)


def test_default_names_come_from_the_predicates_source():
    @fc.model
    def unnamed():
        s = {"x": 0}

        async def a():
            while True:
                await fc.checkpoint()

        fc.spawn(a)
        fc.eventually(lambda: s["x"] == 1)
        fc.leads_to(lambda: s["x"] == 0, lambda: s["x"] == 1)
        fc.sometimes(lambda: s["x"] == 0)

    r = unnamed.check()
    assert sorted(v.name for v in r.violations) == ['lambda: s["x"] == 0 leads to lambda: s["x"] == 1',
                                                    'lambda: s["x"] == 1']
    assert list(r.discoveries) == ['lambda: s["x"] == 0']


def test_bad_arguments_are_usage_errors():
    @fc.model
    def not_callable():
        fc.eventually(True)

    with pytest.raises(fc.UsageError, match=r"fc.eventually\(\) needs zero-argument callables, got bool"):
        not_callable.check()

    @fc.model
    def same_name():
        fc.eventually(lambda: True, name="x")
        fc.leads_to(lambda: True, lambda: True, name="x")

    with pytest.raises(fc.UsageError, match="a liveness property named 'x' is already declared"):
        same_name.check()


def test_a_predicate_that_raises_is_a_model_error():
    @fc.model
    def broken():
        s = {}

        async def a():
            await fc.checkpoint()
            s["k"] = 1

        fc.spawn(a)
        fc.eventually(lambda: s["k"] == 1, name="k set")

    with pytest.raises(fc.ModelError, match="property 'k set' raised KeyError"):
        broken.check()


# --------------------------------------------------------------------------- the analysis against brute force


def brute_force_fails(G, kind, keys, fairness, env):
    """Is there a run violating the property?  Enumerates every set of edges a run can repeat forever."""
    import itertools

    import networkx as nx

    lab = {u: G.nodes[u]["labels"] for u in G}
    ok = {u for u in G if not G.nodes[u]["violations"]}
    goal = keys[-1]
    avoid = {u for u in ok if not lab[u][goal]}
    reach = nx.descendants(G, 0) | {0}
    if kind == "eventually":
        triggers = {0} & avoid
    elif kind == "always_eventually":
        triggers = avoid & reach
    else:
        triggers = {u for u in avoid & reach if lab[u][keys[0]]}
    H = G.subgraph(avoid)
    from_trigger = set()
    for t in triggers:
        from_trigger |= nx.descendants(H, t) | {t}
    if any(G.out_degree(u) == 0 for u in from_trigger):
        return True
    edges = [(u, v) for u, v in H.edges if u in from_trigger]
    for k in range(1, len(edges) + 1):
        for sub in itertools.combinations(edges, k):
            S = nx.DiGraph(sub)
            if not nx.is_strongly_connected(S):
                continue
            moved = {s.actor for u, v in sub for s in G.edges[u, v]["steps"]}
            en = [set(G.nodes[u]["enabled"]) - env for u in S]
            need = set.intersection(*en) if fairness == "weak" else set.union(*en) if fairness == "strong" else set()
            if need <= moved:
                return True
    return False


def random_search(rng, n=6, degrees=(0, 1, 2, 2, 3)):
    from types import SimpleNamespace

    import networkx as nx

    from forkcheck._trace import Step

    G = nx.DiGraph()
    actors = ["a", "b", "net"]
    for u in range(n):
        G.add_node(u, fingerprint=f"{u:032x}", violations=["assertion"] if rng.random() < 0.1 and u else [],
                   labels={"P": rng.random() < 0.3, "Q": rng.random() < 0.4}, done=False, enabled=[])
    for u in range(n):
        if G.nodes[u]["violations"]:
            continue
        index = 0
        for v in rng.sample(range(n), rng.choice(degrees)):
            steps = []
            for actor in rng.sample(actors, rng.choice([1, 1, 2])):
                steps.append(Step(index, actor, f"go {v}", "" if actor == "net" else "m.py:1", f"{v:032x}"))
                index += 1
            G.add_edge(u, v, label="", labels=[], actor=steps[0].actor, steps=steps)
        G.nodes[u]["enabled"] = sorted({s.actor for _, _, d in G.out_edges(u, data=True) for s in d["steps"]})
    opts = SimpleNamespace(fairness="weak", stop_on_violation=True, strategy="dfs", max_depth=None)
    return SimpleNamespace(graph=G, complete=True, stopped=False, opts=opts, violations=[], discoveries={},
                           model="random")


def check_lasso(G, v, kind, keys, fairness, env):
    """The counterexample is a real path; its loop is a real, fair loop where the goal is false."""
    tr = v.trace
    state, states = 0, [0]
    for st in tr:
        nxt = [b for b in G.successors(state) if st in G.edges[state, b]["steps"]]
        assert nxt, (state, st)
        state = nxt[0]
        states.append(state)
    goal = keys[-1]
    if tr.cycle_start is None:
        assert G.out_degree(state) == 0 and not G.nodes[state]["labels"][goal]
        loop_states = [state]
    else:
        assert states[tr.cycle_start] == state and len(tr) > tr.cycle_start
        loop_states = states[tr.cycle_start:]
        moved = {s.actor for s in tr[tr.cycle_start:]}
        en = [set(G.nodes[u]["enabled"]) - env for u in loop_states]
        need = set.intersection(*en) if fairness == "weak" else set.union(*en) if fairness == "strong" else set()
        assert need <= moved, (need, moved)
    first_bad = 0 if kind == "eventually" else min(
        i for i, u in enumerate(states) if not G.nodes[u]["labels"][goal] and (kind != "leads_to" or G.nodes[u]["labels"][keys[0]])
        and all(not G.nodes[w]["labels"][goal] for w in states[i:]))
    assert all(not G.nodes[u]["labels"][goal] for u in states[first_bad:])


@pytest.mark.parametrize("fairness", ["weak", "strong", "none"])
def test_the_analysis_agrees_with_brute_force_on_random_graphs(fairness):
    import random

    from forkcheck._check.liveness import analyze

    rng = random.Random(fairness)
    specs = [("eventually", "ev", ("P",)), ("always_eventually", "ae", ("P",)), ("leads_to", "lt", ("P", "Q"))]
    failures = 0
    for _ in range(300):
        search = random_search(rng, n=7, degrees=(0, 1, 2, 2, 3, 3))
        search.opts.fairness = fairness
        analyze(search, specs)
        found = {v.name: v for v in search.violations}
        for kind, name, keys in specs:
            expected = brute_force_fails(search.graph, kind, keys, fairness, {"net"})
            assert (name in found) == expected, (kind, fairness, sorted(search.graph.edges))
            if expected:
                failures += 1
                check_lasso(search.graph, found[name], kind, keys, fairness, {"net"})
    assert 200 < failures < 700  # the random graphs exercise both outcomes
