/* Dining philosophers with ordered forks (deadlock-free), matching
   examples/dining_philosophers.py philosophers(n=3, ordered=True).

   forkcheck transitions of one philosopher, and the d_step here for each:
     acquire first fork            -> d_step 1 (lock first)
     acquire second fork, eat      -> d_step 2 (lock second, eating)
     eat checkpoint: stop eating,
       release both forks          -> d_step 3
     think checkpoint              -> skip (back to the loop head)
   so each philosopher has the same 4 positions (program counter here, frame
   there) and the fork states follow from them.  Check with:
     spin -a -o3 philosophers.pml && gcc -O2 -DNOREDUCE -o pan pan.c && ./pan -m10000 */
#define N 3
bit fork[N];
bit eating[N];

#define left  (_pid)
#define right ((_pid + 1) % N)
#define first  (left < right -> left : right)
#define second (left < right -> right : left)
#define neighbours_apart (!(eating[0] && eating[1]) && !(eating[1] && eating[2]) && !(eating[2] && eating[0]))

active [N] proctype Phil() {
  do
  :: d_step { fork[first] == 0 -> fork[first] = 1 };
     d_step { fork[second] == 0 -> fork[second] = 1; eating[_pid] = 1; assert(neighbours_apart) };
     d_step { eating[_pid] = 0; fork[second] = 0; fork[first] = 0 };
     skip /* think */
  od
}
