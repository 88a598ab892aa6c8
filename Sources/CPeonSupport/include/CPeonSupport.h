// Small wrappers around variadic or macro-only system calls that Swift cannot call directly.
#ifndef PEON_CPEONSUPPORT_H
#define PEON_CPEONSUPPORT_H

/// Makes this process the reaper of its orphaned descendants (Linux PR_SET_CHILD_SUBREAPER), so a
/// supervisor can find and stop what a killed worker left behind. Returns 0, or -1 where unsupported.
int peon_become_child_subreaper(void);

/// Asks the kernel to send `signal` to this process when its parent dies (Linux PR_SET_PDEATHSIG),
/// so a worker never outlives its supervisor. Returns 0, or -1 where unsupported.
int peon_set_parent_death_signal(int signal);

/// How many host-call results the calling thread is lowering into a guest right now (the canonical
/// ABI's `may_leave` flag is closed while this is above zero). Per thread, because a guest's
/// `cabi_realloc`, called while lowering, runs on the thread that made the host call; so one set of
/// host functions can be shared by instances running on many threads.
int peon_lowering_depth(void);

/// Adds `delta` (+1 on entering, -1 on leaving) to the calling thread's lowering depth.
void peon_adjust_lowering_depth(int delta);

#endif
