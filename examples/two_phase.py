"""Two-phase commit, transcribed from Lamport's TLA+ spec TwoPhase.tla.

Each TLA+ action is one `fc.choose` option of the actor that performs it, so
the state graph is the spec's: with 3 resource managers, 288 distinct states
and 1145 transitions (TLC's numbers), shortest-path depth 10.

    forkcheck check examples/two_phase.py --arg n=3

With ``symmetric=True`` the resource managers are ``fc.symmetric`` values:
they are interchangeable, so states that differ only by which managers are in
which state count once (80 states and 317 transitions for n=3; n=7 has 920
states where the spec has 296,448; docs/symmetry.md).

    forkcheck check examples/two_phase.py --arg n=7 --arg symmetric=True
"""

import forkcheck as fc


@fc.model
def two_phase(n=3, symmetric=False):
    rms = fc.symmetric("rm", n) if symmetric else range(n)
    rm_state = {r: "working" for r in rms}
    tm = {"state": "init", "prepared": frozenset()}
    msgs = set()  # messages are never removed, as in the spec

    def tm_actions():
        acts = []
        if tm["state"] == "init":
            acts += [("rcv_prepared", r) for r in rms if ("Prepared", r) in msgs]
            if tm["prepared"] == frozenset(rms):
                acts.append(("commit", None))
            acts.append(("abort", None))
        return acts

    def tm_do(action, r):
        if action == "rcv_prepared":
            tm["prepared"] = tm["prepared"] | {r}
        elif action == "commit":
            tm["state"] = "committed"
            msgs.add(("Commit",))
        else:
            tm["state"] = "aborted"
            msgs.add(("Abort",))

    def rm_actions(r):
        acts = []
        if rm_state[r] == "working":
            acts += ["prepare", "choose_to_abort"]
        if ("Commit",) in msgs:
            acts.append("rcv_commit")
        if ("Abort",) in msgs:
            acts.append("rcv_abort")
        return acts

    def rm_do(r, action):
        if action == "prepare":
            rm_state[r] = "prepared"
            msgs.add(("Prepared", r))
        elif action == "choose_to_abort":
            rm_state[r] = "aborted"
        elif action == "rcv_commit":
            rm_state[r] = "committed"
        else:
            rm_state[r] = "aborted"

    # Each iteration hands the chosen action to a function, so no local variable
    # remembers the previous action: the actors' frames hold only the spec's state.
    async def transaction_manager():
        while True:
            tm_do(*await fc.choose(tm_actions))

    async def resource_manager(r):
        while True:
            rm_do(r, await fc.choose(lambda: rm_actions(r)))

    fc.spawn(transaction_manager, name="tm")
    for r in rms:
        # A symmetric value names its actor itself (resource_manager(rm0)): a name made from it would
        # tell the managers apart, which fc.spawn refuses under symmetry.
        fc.spawn(resource_manager, r, name=None if symmetric else f"rm{r}")

    fc.invariant(lambda: not ("committed" in rm_state.values() and "aborted" in rm_state.values()),
                 name="consistent")
    return {"rm_state": rm_state, "tm": tm, "msgs": msgs}


if __name__ == "__main__":
    result = two_phase(n=3).check(strategy="bfs")
    print(result)
    result.assert_ok()
