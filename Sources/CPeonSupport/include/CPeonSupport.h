// Small wrappers around variadic or macro-only system calls that Swift cannot call directly.
#ifndef PEON_CPEONSUPPORT_H
#define PEON_CPEONSUPPORT_H

#include <sys/types.h>
#include <spawn.h>

/// `O_PATH` from <fcntl.h> (Linux): a descriptor that names a file without opening it for I/O. The
/// Swift Glibc module does not export it (it sits behind `_GNU_SOURCE`), so it comes from C here.
int peon_o_path(void);

/// Opens `path` relative to the folder `dirfd` with `openat2(2)` (Linux 5.6+) in one system call that
/// refuses every symbolic link (`RESOLVE_NO_SYMLINKS`, `RESOLVE_NO_MAGICLINKS`) and every escape from
/// `dirfd` (`RESOLVE_BENEATH`). `flags` are `open(2)` flags. Returns the new descriptor, or -1 with errno
/// set: `ELOOP` when the path holds a symbolic link, `EXDEV` when it would leave `dirfd`, `EAGAIN` when
/// the kernel saw a concurrent rename and asks for a retry, `ENOSYS` when the kernel (or a seccomp
/// filter) has no `openat2`. The constants and the call come from <linux/openat2.h> and <sys/syscall.h>.
int peon_open_beneath_no_links(int dirfd, const char *path, int flags);

/// Opens `/proc/self/fd` (`O_PATH | O_DIRECTORY | O_CLOEXEC`) and checks with `fstatfs` that it lies on procfs
/// (`PROC_SUPER_MAGIC` from <linux/magic.h>), so its entries are this process's descriptors and nothing an
/// operator's file tree could imitate. Returns the descriptor, or -1 with errno set (`ENOENT` when /proc is not
/// mounted, `EXDEV` when what is there is not procfs, `ENOSYS` off Linux).
int peon_open_proc_fds(void);

/// Opens for I/O, with `flags`, the very file the descriptor `fd` (typically `O_PATH`) names: `openat(procfds,
/// "<fd>", flags)` on the folder from `peon_open_proc_fds`, which resolves one decimal name in that folder and
/// then the kernel's magic link to `fd`'s file, never a name in any other folder. The file's permissions are
/// checked again for `flags`. `O_CREAT` and `O_NOFOLLOW` are cleared from `flags` (nothing is created; the
/// magic link must be followed). Returns the new descriptor, or -1 with errno set.
int peon_reopen(int procfds, int fd, int flags);

/// `fgetxattr` from <sys/xattr.h> (the Swift Glibc module does not export it).
long peon_fgetxattr(int fd, const char *name, void *value, unsigned long size);

/// `fsetxattr` from <sys/xattr.h>.
int peon_fsetxattr(int fd, const char *name, const void *value, unsigned long size, int flags);

/// `flistxattr` from <sys/xattr.h>.
long peon_flistxattr(int fd, char *list, unsigned long size);

/// `listxattr`, `getxattr` and `setxattr` by path, for a database file, which SQLite holds open: a descriptor of
/// our own on it, once closed, would drop SQLite's POSIX locks.
long peon_listxattr(const char *path, char *list, unsigned long size);
long peon_getxattr(const char *path, const char *name, void *value, unsigned long size);
int peon_setxattr(const char *path, const char *name, const void *value, unsigned long size, int flags);

/// `POSIX_SPAWN_SETSID` from <spawn.h> (glibc 2.26+): the child leads a new session.
short peon_posix_spawn_setsid(void);

/// `posix_spawn_file_actions_addchdir_np` (glibc 2.29+): the child starts in `path`.
int peon_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+): the child closes every descriptor >= `from`.
int peon_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);

/// Makes this process the reaper of its orphaned descendants (Linux PR_SET_CHILD_SUBREAPER), so a
/// supervisor can find and stop what a killed worker left behind. Returns 0, or -1 where unsupported.
int peon_become_child_subreaper(void);

/// Marks this process not dumpable: another process of the same user cannot read its memory, environment
/// or descriptors through /proc or attach with ptrace, and a crash leaves no core file. Reset by execve.
/// Returns 0, or -1 with errno (or where there is no prctl).
int peon_forbid_inspection(void);

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

/// How a worker process is contained, strongest first.
typedef enum {
    /// A new PID namespace whose init is the worker (needs CAP_SYS_ADMIN): when the worker dies, the
    /// kernel kills every process in the namespace, however it forked or re-parented.
    PEON_CONTAINMENT_PID_NAMESPACE = 1,
    /// A new user namespace (mapping only the caller's own uid and gid) holding a new PID namespace:
    /// the same guarantee without privilege, where unprivileged user namespaces are enabled.
    PEON_CONTAINMENT_USER_NAMESPACE = 2,
    /// No namespace: the worker is a child subreaper and kills its descendants itself. A descendant
    /// escapes only if the worker and the supervisor are both killed with SIGKILL.
    PEON_CONTAINMENT_SUBREAPER = 3,
} peon_containment;

/// Starts `path` (`argv`, `envp`) as a worker under `containment`. Before the program runs, the
/// child's `SIGHUP`, `SIGTERM`, `SIGINT` and `SIGQUIT` are ignored and blocked, every other signal
/// unblocked: one sent before the worker installs its handlers stays pending and reaches them once
/// ``peon_signal_pipe`` unblocks it, instead of being dropped. `liveness_fd` is a pipe's read end the child keeps as descriptor
/// `liveness_target` (close-on-exec cleared), so the worker sees end of file when the supervisor dies.
/// On success stores the child's pid (as this process sees it) and returns 0; otherwise returns an
/// errno value (EPERM, EINVAL, ENOSPC, EUSERS: the namespace is not available here) and starts nothing.
int peon_spawn_worker(const char *path, char *const argv[], char *const envp[], peon_containment containment,
                      int liveness_fd, int liveness_target, pid_t *pid);

/// A close-on-exec descriptor for the child process `pid` (`pidfd_open(2)`, Linux 5.3+), readable once the
/// child has exited, so a `poll` loop learns of the exit without polling `waitpid`. Returns -1 with errno
/// set (`ENOSYS` on an older kernel or under a seccomp filter that refuses it). The call number comes from
/// <sys/syscall.h>.
int peon_pidfd_open(pid_t pid);

/// Creates a pipe whose both ends are close-on-exec. Returns 0, or -1 with errno set.
int peon_pipe_cloexec(int fds[2]);

/// Installs a handler for each of `signals` that writes a record of two `int32_t` (the signal's number and
/// the sender's pid, `si_pid`: 0 for the kernel or a sender outside this PID namespace) to a
/// non-blocking, close-on-exec pipe, and returns that pipe's read end (-1 with errno on failure).
/// One pipe per process: a second call adds signals to the same pipe and returns the same descriptor.
/// The signals are unblocked in the calling thread (a parent may have blocked them across exec).
/// The handler is async-signal-safe (it only calls `write`), and being a real handler it is also what
/// lets a PID namespace's init receive these signals at all.
int peon_signal_pipe(const int *signals, int count);

/// Sends `SIGKILL` to every process in this PID namespace except the caller (`kill(-1, SIGKILL)`).
/// Only meaningful, and only safe, for the init (pid 1) of a PID namespace; refuses (returns -1 with
/// EPERM) anywhere else.
int peon_kill_namespace(void);

#endif
