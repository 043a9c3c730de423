"""The zdtm programs the suite runs (ZDTM_TESTS), what the harness must
expect of each (ZdtmTest), and the file kinds a dump must refuse.  Running
one is zdtm.py's ZdtmTask."""
from dataclasses import dataclass

from . import paths


@dataclass(frozen=True)
class ZdtmTest:
    name: str
    args: tuple = ()
    env: tuple = ()			# extra (NAME, VALUE) pairs
    cpu_flags: tuple = ()		# /proc/cpuinfo flags it needs
    ignore_fd_pos: bool = False		# it writes to a file while it runs
    threads_vary: bool = False		# its threads come and go while it runs
    label: str = ""
    # lazy modes: deliver pages only on faults, so what the program does
    # after the restore (fork, mremap, madvise, ...) meets pages still lazy
    defer_background: bool = False
    tree: bool = False			# it forks: a process tree
    # lazy pages the program itself removes after the restore (munmap,
    # MADV_DONTNEED, a shrinking mremap): the daemon's pages_dropped_event
    # must equal it, or stay within it where it is only a bound (exact
    # False, or background delivery on: pages delivered before the removal
    # are not dropped)
    lazy_removed: int = 0
    lazy_removed_exact: bool = True
    # it forks while pages are lazy: with background delivery off the
    # daemon must have counted inherited pages
    lazy_inherits: bool = False
    # why a second checkpoint of it cannot work yet ("" if it can): with
    # defer_background, in the lazy modes only; else in every mode
    once_only: str = ""
    # it holds abstract unix names or ports, which its copy cannot take
    # while the dumped task still runs on the same host (lazy migration)
    host_names: bool = False
    # a bug of the tool that makes it fail now and then, written down so
    # it is not forgotten: such a program runs only with
    # CRIU_LAZY_KNOWN_BUGS=1 in the environment ("" if none)
    known_bug: str = ""
    # CRIU options every dump and restore of it takes (("--file-locks",))
    cr_opts: tuple = ()
    # it holds write locks, which its copy cannot take while the dumped
    # task still holds them on the same host (lazy migration)
    host_locks: bool = False
    # it holds ptys, whose numbers its copy cannot have while the dumped
    # task still holds them on the same host (lazy migration)
    host_ptys: bool = False
    # CRIU options only its dumps take (("--network-lock", "nftables"))
    dump_opts: tuple = ()

    @property
    def id(self):
        return self.name + (f"-{self.label}" if self.label else "")

    def binary(self):
        return paths.zdtm_binary(self.name)


# Everything dump -> restore must carry.  Sizes of mem_anon are the issue's
# "one page to hundreds of MiB".
ZDTM_TESTS = [
    ZdtmTest("mem_anon", ("--size", "4K"), label="4K"),
    ZdtmTest("mem_anon", ("--size", "1M"), label="1M"),
    ZdtmTest("mem_anon", ("--size", "64M"), label="64M"),
    # page by page, SIGBUS survived (test/test_lazy_guardian.py kills the daemon)
    ZdtmTest("mem_sigbus"),
    ZdtmTest("mem_anon", ("--size", "256M"), label="256M"),
    ZdtmTest("mem_holes"),
    ZdtmTest("heap_brk"),
    ZdtmTest("stack_deep"),
    ZdtmTest("mmap_file_private"),
    ZdtmTest("mmap_file_shared"),
    ZdtmTest("mmap_anon_shared"),
    # a PROT_NONE region: restored eagerly in the lazy modes (lazy-pages.md)
    ZdtmTest("mmap_anon_shared", ("--prot-none",), label="prot-none"),
    ZdtmTest("fpu", ("--isa", "sse"), label="sse"),
    ZdtmTest("fpu", ("--isa", "avx"), cpu_flags=("avx",), label="avx"),
    ZdtmTest("fpu", ("--isa", "avx512"), cpu_flags=("avx512f", "avx512bw"),
             label="avx512"),
    # the same in three threads at once, each with values of its own
    ZdtmTest("fpu", ("--isa", "sse", "--threads", "2"), label="sse-threads"),
    ZdtmTest("fpu", ("--isa", "avx", "--threads", "2"), cpu_flags=("avx",),
             label="avx-threads"),
    ZdtmTest("sigactions"),
    ZdtmTest("sigpending"),
    ZdtmTest("itimer"),
    ZdtmTest("posix_timers"),
    ZdtmTest("posix_timers_thread"),
    ZdtmTest("files"),
    # the task's fds at the numbers the restore's log and helpers had
    ZdtmTest("low_fds"),
    ZdtmTest("pipe"),
    ZdtmTest("fifo"),
    # the same with their pages lazy while they read their pipes
    ZdtmTest("pipe", label="lazy-reads", defer_background=True),
    ZdtmTest("fifo", label="lazy-reads", defer_background=True),
    ZdtmTest("eventfd"),
    ZdtmTest("signalfd"),
    ZdtmTest("timerfd"),
    ZdtmTest("unix_socketpair"),
    ZdtmTest("epoll"),
    # a watch of a fd closed since, whose file another fd holds
    ZdtmTest("epoll", ("--stale",), label="stale"),
    ZdtmTest("inotify"),
    # a watch on a deleted file the program holds open (a ghost file)
    ZdtmTest("inotify", ("--deleted",), label="deleted"),
    ZdtmTest("fanotify"),
    ZdtmTest("pty", host_ptys=True),
    ZdtmTest("pty", ("--child",), label="child", tree=True, host_ptys=True),
    ZdtmTest("file_locks", cr_opts=("--file-locks",), host_locks=True),
    ZdtmTest("file_locks", ("--read-only",), label="read-only", cr_opts=("--file-locks",)),
    # a flock lock through an open file a child shares from the fork
    ZdtmTest("file_locks", ("--inherit",), label="inherit", cr_opts=("--file-locks",),
             tree=True, host_locks=True),
    ZdtmTest("unix_named", host_names=True),
    # the same with their pages lazy while they read their queues
    ZdtmTest("unix_socketpair", label="lazy-reads", defer_background=True),
    ZdtmTest("unix_named", label="lazy-reads", host_names=True, defer_background=True),
    # files in flight (SCM_RIGHTS); the second with its pages still lazy
    # while it reads its queues and the files passed in them
    ZdtmTest("unix_scm"),
    ZdtmTest("unix_scm", label="lazy-reads", defer_background=True),
    # connections not yet accepted, with data (and a file in flight)
    # waiting in them; the second: none sends anything
    ZdtmTest("unix_backlog"),
    ZdtmTest("unix_backlog", ("--empty",), label="empty"),
    ZdtmTest("unix_backlog", ("--tree",), label="tree", tree=True),
    ZdtmTest("unix_backlog", label="lazy-reads", defer_background=True),
    # clients closed before the accept, with data and without (the
    # accepted end reads it, then the end of the stream)
    ZdtmTest("unix_backlog", ("--closed",), label="closed"),
    ZdtmTest("unix_backlog", ("--closed", "--empty", "--tree"), label="closed-empty-tree",
             tree=True),
    ZdtmTest("netlink", host_names=True),
    ZdtmTest("netlink", label="lazy-reads", host_names=True, defer_background=True),
    ZdtmTest("inet_sockets", host_names=True),
    ZdtmTest("inet_sockets", label="lazy-reads", host_names=True, defer_background=True),
    # TCP connections (issue 9): both ends in the task, data in flight both
    # ways, with each network lock; half-closed ones too
    ZdtmTest("tcp_established", label="nftables", host_names=True,
             cr_opts=("--tcp-established",),
             dump_opts=("--network-lock", "nftables")),
    ZdtmTest("tcp_established", ("--half-closed",), label="half-closed-iptables",
             host_names=True, cr_opts=("--tcp-established",)),
    # no lock: nothing may be unsent, nothing half-closed (it would be sent,
    # or the FIN put back acknowledged, before its peer exists: a reset)
    ZdtmTest("tcp_established", ("--small",), label="skip", host_names=True,
             cr_opts=("--tcp-established",), dump_opts=("--network-lock", "skip")),
    # connections closing with data still unsent: FIN_WAIT1, LAST_ACK,
    # CLOSING (and their peers), under the iptables lock
    ZdtmTest("tcp_closing", label="iptables", host_names=True,
             cr_opts=("--tcp-established",)),
    # a connection still being opened (SYN_SENT): its SYN sent again with
    # the same sequence number, under the iptables lock and with none
    ZdtmTest("tcp_syn_sent", label="iptables", host_names=True,
             cr_opts=("--tcp-established",), dump_opts=("--skip-in-flight",),
             once_only="once restored it is connected and waits on a listener of "
                       "the task, which --skip-in-flight drops"),
    ZdtmTest("tcp_syn_sent", label="skip", host_names=True,
             cr_opts=("--tcp-established",),
             dump_opts=("--skip-in-flight", "--network-lock", "skip"),
             once_only="once restored it is connected and waits on a listener of "
                       "the task, which --skip-in-flight drops"),
    # a network namespace of its own: links, addresses, routes, sysctls,
    # and sockets inside it; with a TCP connection inside it too
    ZdtmTest("netns_own"),
    ZdtmTest("netns_own", ("--established",), label="established",
             cr_opts=("--tcp-established",)),
    # the same with its pages lazy while it reads its sockets inside
    ZdtmTest("netns_own", ("--established",), label="lazy-reads",
             cr_opts=("--tcp-established",), defer_background=True),
    ZdtmTest("memfd"),
    # deleted files held open or mapped, a deleted cwd (ghost files)
    ZdtmTest("ghost_files"),
    ZdtmTest("ghost_files", ("--child",), label="tree", tree=True),
    # files whose name is gone while another link keeps them (--link-remap)
    ZdtmTest("link_remap", cr_opts=("--link-remap",)),
    # a task chrooted into a directory of its own; that root deleted
    ZdtmTest("chroot_root"),
    ZdtmTest("chroot_root", ("--deleted",), label="deleted"),
    # memfds mapped shared and private, with and without a descriptor,
    # sealed, and shared with a child
    ZdtmTest("memfd_map"),
    ZdtmTest("memfd_map", ("--child",), label="tree", tree=True),
    # MAP_SHARED of /dev/zero: shared anonymous memory under another name
    ZdtmTest("mmap_devzero"),
    ZdtmTest("mmap_devzero", ("--child",), label="tree", tree=True),
    # SysV IPC of a tree in an IPC namespace of its own: segments attached
    # or not, read-only, locked, removed; queues, semaphores, sysctls
    ZdtmTest("sysv_ipc"),
    ZdtmTest("sysv_ipc", ("--child",), label="tree", tree=True),
    # with a network namespace of its own too; with its private pages
    # still lazy while it reads its segments, queues and semaphores
    ZdtmTest("sysv_ipc", ("--net",), label="netns"),
    ZdtmTest("sysv_ipc", label="lazy-reads", defer_background=True),
    ZdtmTest("cwd_umask_rlimit"),
    ZdtmTest("oom_score_adj"),
    ZdtmTest("loginuid"),
    ZdtmTest("child_subreaper"),
    ZdtmTest("membarrier"),
    ZdtmTest("pidfd"),
    ZdtmTest("pidfd_child", tree=True),
    ZdtmTest("argv_environ", ("--extra", "two  spaces, 'quotes' and \u00fcn\u00efc\u00f6de"),
             env=(("ZDTM_ENV_MARK", "mark=\u2713 with spaces"),)),
    ZdtmTest("vdso"),
    ZdtmTest("busyloop"),
    ZdtmTest("maps"),
    ZdtmTest("rseq"),
    ZdtmTest("counter", ("--log", "counter.log", "--size", "16M", "--interval-ms", "20"),
             ignore_fd_pos=True),
    # userfaultfd events while pages are lazy (they pass in every mode)
    ZdtmTest("lazy_fork", defer_background=True, lazy_inherits=True),
    # the three regions may share a VMA, so a fault-around window in one
    # may deliver pages of the shrunk one: its 192 pages are a bound
    ZdtmTest("lazy_mremap", defer_background=True, lazy_removed=192,
             lazy_removed_exact=False),
    ZdtmTest("lazy_madvise", defer_background=True, lazy_removed=200),
    ZdtmTest("lazy_munmap", defer_background=True, lazy_removed=256),
    ZdtmTest("lazy_sighandler", defer_background=True),
    # a known working set (test/test_working_set.py reads what was recorded)
    ZdtmTest("lazy_touch_order", defer_background=True),
    ZdtmTest("lazy_touch_order", ("--mremap",), label="mremap", defer_background=True),
    # VMA splits without any event (issue 13): faults only, and with
    # background chunks crossing the new boundaries
    ZdtmTest("lazy_split", ("--size", "256K"), label="64p", defer_background=True),
    ZdtmTest("lazy_split", ("--size", "256K"), label="64p-background"),
    ZdtmTest("lazy_split", ("--size", "256M"), label="256M", defer_background=True),
    ZdtmTest("lazy_split", ("--size", "256M"), label="256M-background"),
    ZdtmTest("lazy_split_thread", defer_background=True),
    ZdtmTest("lazy_split_thread", label="background"),
    # a thread stack filled eagerly inside a THP region (huge page zeros)
    ZdtmTest("lazy_thp", defer_background=True),
    ZdtmTest("lazy_thp", label="background"),
    ZdtmTest("lazy_sparse_fork", defer_background=True, lazy_inherits=True,
             once_only="the second dump would come while the 16 TiB VMA is still "
                       "registered with userfaultfd, and the dump reads every page of "
                       "such a VMA through the daemon (criu-lazy/dump/pages.c)"),
    ZdtmTest("lazy_sparse_fork", label="background"),
    # the soak's churn (issue 12): 8 threads rewrite, MADV_DONTNEED,
    # MADV_FREE, mprotect-split, mremap and fork over lazy chunks with
    # mutexes in lazy pages; any of its 4096 pages may be removed
    ZdtmTest("lazy_churn", defer_background=True, lazy_inherits=True, lazy_removed=4096,
             lazy_removed_exact=False),
    ZdtmTest("lazy_churn", label="background", lazy_removed=4096, lazy_removed_exact=False),
    # the same in a child at once (issue 8 point 6: the events of two
    # processes of a tree, each with its own userfaultfd, on one daemon)
    ZdtmTest("lazy_churn", ("--child",), label="tree", tree=True, defer_background=True,
             lazy_inherits=True, lazy_removed=2 * 4096, lazy_removed_exact=False),
    # threads: per-thread state, blocked syscalls, many threads, threads
    # faulting concurrently on lazy pages (with mutexes in them), threads
    # created and exiting while the dump seizes them
    ZdtmTest("thread"),
    ZdtmTest("thread", ("--threads", "100"), label="many"),
    ZdtmTest("threads_state"),
    # glibc gives back the unused part of an exiting thread's stack
    # (MADV_DONTNEED): up to 16 stacks of 8 MiB once a second dump has made
    # every page of them lazy
    ZdtmTest("threads_lazy_stress", defer_background=True, lazy_removed=16 * 2048,
             lazy_removed_exact=False),
    ZdtmTest("threads_churn", threads_vary=True),
    # seccomp: strict mode, filters shared (TSYNC), per thread, inherited
    ZdtmTest("thread_seccomp"),
    ZdtmTest("seccomp_filter"),
    ZdtmTest("threads_creds"),
    ZdtmTest("threads_sleep_restart"),
    ZdtmTest("threads_sleep_restart", ("--no-eintr",), label="no-eintr",
             once_only="a sleep with rem restarted by the first restore is in "
                       "restart_syscall at the second dump, which cannot tell which syscall "
                       "it restarts: EINTR (criu-lazy/restore/syscall-restart.c)"),
    ZdtmTest("seccomp_strict"),
    ZdtmTest("seccomp_filter_threads"),
    ZdtmTest("seccomp_filter_inherit", tree=True),
    # process trees (issue 8)
    ZdtmTest("tree", ("--children", "1"), label="two", tree=True),
    ZdtmTest("tree", ("--children", "3", "--session", "--group"), label="groups", tree=True),
    # groups no ancestor leads: joined once every task exists (tree-groups.c)
    ZdtmTest("tree", ("--children", "1", "--group", "--late-groups"), label="late-groups",
             tree=True),
    ZdtmTest("tree", ("--children", "1", "--zombie", "--stopped"), label="zombie-stopped",
             tree=True),
    ZdtmTest("tree", ("--children", "0", "--dead-leader"), label="dead-leader", tree=True),
    ZdtmTest("tree_forker", tree=True),
    ZdtmTest("tree_shmem", tree=True),
    # lazy shared memory (issue 11, point 3): two processes write it at once
    # while its pages are still to come (background off), and with the
    # background filling it under them
    ZdtmTest("shmem_lazy_share", tree=True, defer_background=True),
    ZdtmTest("shmem_lazy_share", ("--size", "16M"), label="background", tree=True),
    ZdtmTest("shmem_lazy_share", ("--size", "1M", "--grow"), label="grow", tree=True,
             defer_background=True),
    # MADV_DONTNEED (data kept) and MADV_REMOVE (zeros) while still lazy
    ZdtmTest("shmem_lazy_share", ("--size", "1M", "--discard"), label="discard", tree=True,
             defer_background=True, lazy_removed=64, lazy_removed_exact=False),
    # private memory shared copy-on-write across three generations
    ZdtmTest("tree_cow", tree=True),
    # advice the parent gave after its fork stays out of its child's VMA
    ZdtmTest("vma_advice_fork", tree=True),
    # every VMA state of madvise, mmap and mlock (issue 9, point 6); the
    # fork ones fork after the restore, with the pages still lazy
    *[ZdtmTest("vma_flags", ("--state", s), label=s,
               defer_background=s in ("dontfork", "wipeonfork", "prot-none"))
      for s in ("dontfork", "wipeonfork", "dontdump", "hugepage", "nohugepage", "mergeable",
                "random", "sequential", "locked", "mlock", "droppable", "guard", "shared-rw",
                "prot-none", "advice-split")],
    # five processes faulting at once on one daemon
    ZdtmTest("tree_stress", tree=True, defer_background=True),
    # issue 8's stress: 16 threads and 4 children of 4 threads, faulting at
    # once on random lazy pages, with mutexes inside lazy pages; glibc gives
    # back the unused part of each exiting thread's stack (32 of 8 MiB)
    ZdtmTest("tree_lazy_stress", tree=True, defer_background=True,
             lazy_removed=32 * 2048, lazy_removed_exact=False),
    # files shared between the processes of a tree (restore/fd-share.c)
    ZdtmTest("share_files", tree=True),
    # files in flight that another process holds too, or has in flight too
    ZdtmTest("share_scm", tree=True),
    ZdtmTest("share_pipes", tree=True),
    ZdtmTest("share_sockets", tree=True, host_names=True),
    # unix sockets connected by name across three processes (a chain and a
    # listener): every name bound before anything connects to it
    ZdtmTest("unix_chain", tree=True, host_names=True),
    ZdtmTest("share_kobj", tree=True),
    # an epoll watching a file its process closed, which the child holds
    # (or which the process holds under another number)
    ZdtmTest("share_kobj", ("--epoll-closed",), label="epoll-closed", tree=True),
    ZdtmTest("share_kobj", ("--epoll-dup",), label="epoll-dup", tree=True),
    ZdtmTest("share_fs", tree=True),
    # one descriptor table shared by processes (CLONE_FILES), with CLONE_FS
    # too, and three sharers (restore/fdt.c)
    ZdtmTest("share_fdtable", tree=True),
    ZdtmTest("share_fdtable", ("--fs",), label="fs", tree=True),
    ZdtmTest("share_fdtable", ("--chain",), label="chain", tree=True),
    # lazy modes: the pages come only on faults, while both processes read
    # and write the pipes and sockets they share
    ZdtmTest("share_pipes", label="faults", tree=True, defer_background=True),
    ZdtmTest("share_sockets", label="faults", tree=True, host_names=True,
             defer_background=True),
]

# Things a dump must refuse, leaving the task running and unharmed; each
# with the words one of which the refusal must use to name its kind.
REFUSED_KINDS = {
    "unix": r"BPF filter",
    "unix-scm-epoll": r"epoll fd .*in flight",
    "unix-scm-self": r"itself in flight",
    "netlink-connected": r"netlink socket connected to port",
    "tcp": r"socket|tcp|inet",
    "packet": r"packet",
    "userfaultfd": r"userfaultfd",
}
REFUSED_FDS = (42, 43)


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def missing_cpu_flags(spec):
    have = cpu_flags()
    return [f for f in spec.cpu_flags if f not in have]
