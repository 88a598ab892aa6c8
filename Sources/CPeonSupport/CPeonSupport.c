#if defined(__linux__)
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include "CPeonSupport.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <sys/syscall.h>
#if defined(__linux__)
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/vfs.h>
#include <sched.h>
#include <sys/prctl.h>
#endif

int peon_become_child_subreaper(void) {
#if defined(__linux__)
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#else
    return -1;
#endif
}

int peon_forbid_inspection(void) {
#if defined(__linux__)
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
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

int peon_pidfd_open(pid_t pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
    /* pidfd descriptors are always close-on-exec. */
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int peon_pipe_cloexec(int fds[2]) {
#if defined(__linux__)
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

/* ---- Worker spawning ---------------------------------------------------------------------------- */

#if defined(__linux__)
struct worker_arguments {
    const char *path;
    char *const *argv;
    char *const *envp;
    int go_read, go_write;        /* parent -> child: one byte once the child may exec */
    int failure_read, failure_write; /* child -> parent: errno of a failed execve; EOF on success */
    int liveness_fd, liveness_target;
};

/* Runs in the new process (a copy of the parent's memory, not shared): async-signal-safe calls only. */
static int worker_main(void *raw) {
    const struct worker_arguments *arguments = raw;
    close(arguments->go_write);
    close(arguments->failure_read);
    char go = 0;
    ssize_t count;
    do { count = read(arguments->go_read, &go, 1); } while (count < 0 && errno == EINTR);
    if (count != 1) _exit(127);  /* the parent gave up (or died) before letting us run */
    close(arguments->go_read);

    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    /* The stop and reload signals are ignored (none may kill the worker by its default action) and
       blocked until the worker installs its handlers (peon_signal_pipe unblocks them): a blocked signal
       stays pending across execve, where an ignored and unblocked one would be dropped. The worker is the
       init of its PID namespace, which the kernel shields from every signal it has no handler for, so
       without the block a SIGTERM in its first moments was lost and the run went on. */
    sigaction(SIGHUP, &ignore, NULL);
    sigaction(SIGTERM, &ignore, NULL);
    sigaction(SIGINT, &ignore, NULL);
    sigaction(SIGQUIT, &ignore, NULL);
    sigset_t held;
    sigemptyset(&held);
    sigaddset(&held, SIGHUP);
    sigaddset(&held, SIGTERM);
    sigaddset(&held, SIGINT);
    sigaddset(&held, SIGQUIT);
    sigprocmask(SIG_SETMASK, &held, NULL);

    if (arguments->liveness_fd == arguments->liveness_target) {
        int flags = fcntl(arguments->liveness_fd, F_GETFD);
        if (flags < 0 || fcntl(arguments->liveness_fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) goto failed;
    } else if (dup2(arguments->liveness_fd, arguments->liveness_target) < 0) {
        goto failed;
    }
    execve(arguments->path, arguments->argv, arguments->envp);
failed:;
    int error = errno;
    ssize_t ignored = write(arguments->failure_write, &error, sizeof error);
    (void)ignored;
    _exit(127);
}

/* Moves a close-on-exec descriptor above `floor`, so the child's dup2 onto `floor` cannot clobber it. */
static int move_above(int fd, int floor) {
    if (fd > floor) return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, floor + 1);
    int error = errno;
    close(fd);
    errno = error;
    return moved;
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    size_t length = strlen(text);
    ssize_t written = write(fd, text, length);
    int error = written == (ssize_t)length ? 0 : (written < 0 ? errno : EIO);
    close(fd);
    return error;
}

/* Maps only our own effective uid and gid into the child's new user namespace (what an unprivileged
   process may map), so files keep their owners and nothing gains a privilege outside. */
static int write_id_maps(pid_t child) {
    char path[64], line[64];
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)child);
    int error = write_file(path, "deny");
    if (error != 0 && error != ENOENT) return error;
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)child);
    snprintf(line, sizeof line, "%u %u 1\n", (unsigned)geteuid(), (unsigned)geteuid());
    if ((error = write_file(path, line)) != 0) return error;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)child);
    snprintf(line, sizeof line, "%u %u 1\n", (unsigned)getegid(), (unsigned)getegid());
    return write_file(path, line);
}
#endif

int peon_spawn_worker(const char *path, char *const argv[], char *const envp[], peon_containment containment,
                      int liveness_fd, int liveness_target, pid_t *pid) {
#if defined(__linux__)
    int flags = SIGCHLD;
    switch (containment) {
    case PEON_CONTAINMENT_PID_NAMESPACE: flags |= CLONE_NEWPID; break;
    case PEON_CONTAINMENT_USER_NAMESPACE: flags |= CLONE_NEWUSER | CLONE_NEWPID; break;
    case PEON_CONTAINMENT_SUBREAPER: break;
    default: return EINVAL;
    }
    int go[2], failure[2];
    if (peon_pipe_cloexec(go) != 0) return errno;
    if (peon_pipe_cloexec(failure) != 0) {
        int error = errno;
        close(go[0]);
        close(go[1]);
        return error;
    }
    int descriptors[4] = { go[0], go[1], failure[0], failure[1] };
    for (int i = 0; i < 4; i++) {
        descriptors[i] = move_above(descriptors[i], liveness_target);
        if (descriptors[i] < 0) {
            int error = errno;
            for (int j = 0; j < 4; j++) if (j != i && descriptors[j] >= 0) close(descriptors[j]);
            return error;
        }
    }
    struct worker_arguments arguments = {
        .path = path, .argv = argv, .envp = envp,
        .go_read = descriptors[0], .go_write = descriptors[1],
        .failure_read = descriptors[2], .failure_write = descriptors[3],
        .liveness_fd = liveness_fd, .liveness_target = liveness_target,
    };
    /* Without CLONE_VM the child runs on its own copy of this stack, so it can be freed at once. */
    const size_t stack_size = 256 * 1024;
    char *stack = malloc(stack_size);
    if (stack == NULL) {
        for (int i = 0; i < 4; i++) close(descriptors[i]);
        return ENOMEM;
    }
    /* A process that is not dumpable (peon_forbid_inspection) makes its /proc files root's, and a child inherits
       that: this process, unprivileged, could then not write the new user namespace's id maps. The child is
       cloned dumpable (it makes itself undumpable again once it has exec'd), and this process at once again. */
    int undumpable = containment == PEON_CONTAINMENT_USER_NAMESPACE && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0;
    if (undumpable) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    pid_t child = clone(worker_main, stack + stack_size, flags, &arguments);
    int clone_error = errno;
    if (undumpable) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    free(stack);
    close(arguments.go_read);
    close(arguments.failure_write);
    if (child < 0) {
        close(arguments.go_write);
        close(arguments.failure_read);
        return clone_error;
    }
    int error = containment == PEON_CONTAINMENT_USER_NAMESPACE ? write_id_maps(child) : 0;
    if (error == 0) {
        char byte = 1;
        ssize_t written;
        do { written = write(arguments.go_write, &byte, 1); } while (written < 0 && errno == EINTR);
        if (written != 1) error = written < 0 ? errno : EIO;
    }
    close(arguments.go_write);
    if (error == 0) {
        int exec_error = 0;
        ssize_t count;
        do { count = read(arguments.failure_read, &exec_error, sizeof exec_error); } while (count < 0 && errno == EINTR);
        if (count == (ssize_t)sizeof exec_error) error = exec_error != 0 ? exec_error : ENOEXEC;
    }
    close(arguments.failure_read);
    if (error != 0) {
        kill(child, SIGKILL);
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        return error;
    }
    *pid = child;
    return 0;
#else
    (void)path; (void)argv; (void)envp; (void)containment; (void)liveness_fd; (void)liveness_target; (void)pid;
    return ENOSYS;
#endif
}

/* ---- Signals as bytes on a pipe ----------------------------------------------------------------- */

static int signal_pipe_fds[2] = { -1, -1 };

static void on_signal(int signal_number, siginfo_t *info, void *context) {
    (void)context;
    int saved = errno;
    /* One record per signal: the number and the sender's pid (0 from the kernel, or from outside this PID
       namespace). 8 bytes is below PIPE_BUF, so a record is written whole or not at all. */
    int32_t record[2] = { (int32_t)signal_number, info != NULL ? (int32_t)info->si_pid : 0 };
    ssize_t ignored = write(signal_pipe_fds[1], record, sizeof record);
    (void)ignored;
    errno = saved;
}

int peon_signal_pipe(const int *signals, int count) {
    if (signal_pipe_fds[0] < 0) {
        int fds[2];
        if (peon_pipe_cloexec(fds) != 0) return -1;
        fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
        fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
        signal_pipe_fds[0] = fds[0];
        signal_pipe_fds[1] = fds[1];
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART | SA_SIGINFO;
    sigset_t handled;
    sigemptyset(&handled);
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
        sigaddset(&handled, signals[i]);
    }
    /* A parent may have started us with these blocked (the mask survives exec): unblock them here, in
       the calling thread and the threads it starts later, or they would wait forever, pending. */
    if (pthread_sigmask(SIG_UNBLOCK, &handled, NULL) != 0) return -1;
    return signal_pipe_fds[0];
}

int peon_kill_namespace(void) {
    if (getpid() != 1) {
        errno = EPERM;
        return -1;
    }
    return kill(-1, SIGKILL);
}

int peon_o_path(void) {
    return O_PATH;
}

short peon_posix_spawn_setsid(void) {
    return POSIX_SPAWN_SETSID;
}

int peon_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int peon_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

long peon_fgetxattr(int fd, const char *name, void *value, unsigned long size) {
    return (long)fgetxattr(fd, name, value, (size_t)size);
}

int peon_fsetxattr(int fd, const char *name, const void *value, unsigned long size, int flags) {
    return fsetxattr(fd, name, value, (size_t)size, flags);
}

long peon_flistxattr(int fd, char *list, unsigned long size) {
    return (long)flistxattr(fd, list, (size_t)size);
}

long peon_listxattr(const char *path, char *list, unsigned long size) {
    return (long)listxattr(path, list, (size_t)size);
}

long peon_getxattr(const char *path, const char *name, void *value, unsigned long size) {
    return (long)getxattr(path, name, value, (size_t)size);
}

int peon_setxattr(const char *path, const char *name, const void *value, unsigned long size, int flags) {
    return setxattr(path, name, value, (size_t)size, flags);
}

int peon_open_proc_fds(void) {
#if defined(__linux__)
    int fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct statfs info;
    if (fstatfs(fd, &info) != 0 || info.f_type != PROC_SUPER_MAGIC) {
        close(fd);
        errno = EXDEV;
        return -1;
    }
    return fd;
#else
    errno = ENOSYS;
    return -1;
#endif
}

int peon_reopen(int procfds, int fd, int flags) {
    if (procfds < 0 || fd < 0) {
        errno = EBADF;
        return -1;
    }
    char name[16];
    snprintf(name, sizeof name, "%d", fd);
    flags &= ~(O_CREAT | O_NOFOLLOW);
    return openat(procfds, name, flags);
}

int peon_open_beneath_no_links(int dirfd, const char *path, int flags) {
#if defined(__linux__) && defined(SYS_openat2)
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (__u64)(unsigned int)flags;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
#else
    (void)dirfd;
    (void)path;
    (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}
