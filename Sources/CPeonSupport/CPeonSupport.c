#include "CPeonSupport.h"
#if defined(__linux__)
#include <sys/prctl.h>
#endif

int peon_become_child_subreaper(void) {
#if defined(__linux__)
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#else
    return -1;
#endif
}

int peon_set_parent_death_signal(int signal) {
#if defined(__linux__)
    return prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0);
#else
    (void)signal;
    return -1;
#endif
}

static _Thread_local int lowering_depth;

int peon_lowering_depth(void) {
    return lowering_depth;
}

void peon_adjust_lowering_depth(int delta) {
    lowering_depth += delta;
}
