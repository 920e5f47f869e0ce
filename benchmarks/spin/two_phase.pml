/* Two-phase commit, TLA+ TwoPhase with 3 resource managers, matching
   examples/two_phase.py two_phase(n=3) state for state.

   forkcheck: one actor per TM/RM, each a `while True: do(*await fc.choose(actions))`
   loop, so every actor's frame is always at the same await and a state is
   the shared data (rm_state, tm state, tm prepared, msgs).  Here each TLA+
   action is one d_step (one indivisible SPIN transition) that returns the
   process to its loop head, so the program counters are constant too and
   SPIN's states are the same 288.  Check with:
     spin -a -o3 two_phase.pml && gcc -O2 -DNOREDUCE -o pan pan.c && ./pan -m10000 */
#define N 3
#define WORKING   0
#define PREPARED  1
#define COMMITTED 2
#define ABORTED   3
#define INIT      0

byte rmState[N];             /* all WORKING */
byte tmState;                /* INIT, COMMITTED, ABORTED */
bool tmPrepared[N];
bool msgPrepared[N];         /* msgs: messages are never removed */
bool msgCommit;
bool msgAbort;

#define somecommitted (rmState[0] == COMMITTED || rmState[1] == COMMITTED || rmState[2] == COMMITTED)
#define someaborted   (rmState[0] == ABORTED || rmState[1] == ABORTED || rmState[2] == ABORTED)
#define consistent    (!(somecommitted && someaborted))

active proctype TM() {
  do
  :: d_step { tmState == INIT && msgPrepared[0] -> tmPrepared[0] = 1 }
  :: d_step { tmState == INIT && msgPrepared[1] -> tmPrepared[1] = 1 }
  :: d_step { tmState == INIT && msgPrepared[2] -> tmPrepared[2] = 1 }
  :: d_step { tmState == INIT && tmPrepared[0] && tmPrepared[1] && tmPrepared[2] -> tmState = COMMITTED; msgCommit = 1 }
  :: d_step { tmState == INIT -> tmState = ABORTED; msgAbort = 1 }
  od
}

active [N] proctype RM() {
  do
  :: d_step { rmState[_pid - 1] == WORKING -> rmState[_pid - 1] = PREPARED; msgPrepared[_pid - 1] = 1; assert(consistent) }
  :: d_step { rmState[_pid - 1] == WORKING -> rmState[_pid - 1] = ABORTED; assert(consistent) }
  :: d_step { msgCommit -> rmState[_pid - 1] = COMMITTED; assert(consistent) }
  :: d_step { msgAbort -> rmState[_pid - 1] = ABORTED; assert(consistent) }
  od
}
