"""Two-phase commit over mailboxes: a coordinator and n resource managers exchange messages.

The coordinator asks every resource manager to prepare, collects their votes
(each votes yes or no: a nondeterministic choice), and sends them all the
decision: commit if every vote was yes, else abort.  Each resource manager
has its own mailbox and its own record of the outcome, and is handed only
those and the coordinator's mailbox: managers that do not exchange messages
share nothing, which is what the reductions need to reorder their steps
(docs/reductions.md).

    forkcheck check examples/two_phase_mailboxes.py --arg n=3
    forkcheck check examples/two_phase_mailboxes.py --arg n=3 --reduction por
"""

import forkcheck as fc


@fc.model
def two_phase_mailboxes(n=3):
    to_tm = fc.Mailbox("tm")
    boxes = tuple(fc.Mailbox(f"rm{i}") for i in range(n))
    outcome = tuple({"decision": None} for _ in range(n))

    async def coordinator():
        for box in boxes:
            box.put("prepare")
        yes = 0
        for _ in range(n):
            yes += await to_tm.get() == "yes"
        decision = "commit" if yes == n else "abort"
        for box in boxes:
            box.put(decision)

    async def resource_manager(box, mine):
        await box.get()  # prepare
        to_tm.put(await fc.choose(["yes", "no"]))
        mine["decision"] = await box.get()

    fc.spawn(coordinator, name="tm")
    for i in range(n):
        fc.spawn(resource_manager, boxes[i], outcome[i], name=f"rm{i}")

    def decisions():
        return [o["decision"] for o in outcome]

    fc.invariant(lambda: not ("commit" in decisions() and "abort" in decisions()), name="consistent")
    return outcome


if __name__ == "__main__":
    for reduction in ("none", "sleep", "por"):
        print(two_phase_mailboxes(n=3).check(reduction=reduction).summary())
