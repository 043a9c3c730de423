"""The checks can fail: each zdtm program must say FAIL when its state is
changed behind its back, and the /proc comparison must see a change.

Without this, a PASS after a restore would prove nothing: a program whose
check is broken passes whatever the tool did.  Each case starts a program
(no checkpoint), changes one piece of the state it checks -- memory through
/proc/PID/mem, a file on disk, a register through ptrace, an rlimit, a
pending signal, or, where the state cannot be changed from outside (timers,
sigactions, the memory map), the record the program compares it with --
then sends SIGTERM and expects FAIL naming what changed.  Every program
under test/zdtm has a case (test_every_program_is_covered), and each lazy_*
program one more: told its pages were left lazy when there was no restore
at all, it must fail its premise.
"""
import os
import signal

import pytest

from lib import procstate
from lib import paths
from lib.zdtm import PID_LAUNCHER, PIDNS_LAUNCHER, ZdtmTest
from lib.zdtm_catalogue import missing_cpu_flags
from lib.selfcheck import expect_fail
from lib.mutate_task import (change_cmdline, change_r12, change_ro_data, change_shared_file,
                             change_unwritten_file_page, change_xmm5,
                             claim_lazy_without_restore, forge_first_log_line, lower_nofile,
                             poke_busyloop_step, poke_child_getpriority_errno,
                             poke_cow_page3_same, poke_deepest_frame, poke_expected_byte,
                             poke_expected_exit_status, poke_expected_itimer_interval,
                             poke_expected_reply, poke_expected_sum, poke_expected_uname_errno,
                             poke_expected_write_seq,
                             poke_forker_child_memory, poke_heap, poke_lazy_region_page5,
                             poke_min_wait, poke_own_page5, poke_readonly_part,
                             poke_recorded_maps, poke_recorded_nice, poke_recorded_rseq_size,
                             poke_recorded_sigusr1_flags, poke_recorded_vdso_line,
                             poke_recorded_worker_tid, poke_region_page2,
                             poke_region_page2_vma, poke_shared_anon, poke_shared_page20,
                             poke_shared_page19,
                             poke_sparse_page1, poke_stress_page5, poke_touch_order_first, poke_t1_creds,
                             poke_t2_getpriority_errno, poke_tree_inherited_page3,
                             queue_blocked_sighup, stop_the_thread, zero_region_page0)
from lib.mutate_fds import (add_to_eventfd_20, add_to_eventfd_30, arm_timerfd_23,
                            change_ghost_20, change_memfd_23, chmod_croot, link_lr_keep_again, change_memfd_map_20,
                            poke_devzero_a_page3, poke_expected_loginuid, poke_sysv_a,
                            poke_expected_subreaper, poke_expected_umask,
                            poke_recorded_membarrier, poke_recorded_timer_id,
                            raise_netns_dgram_qlen,
                            raise_oom_score_adj, resize_pty_21, seek_child_fd30_to_0,
                            seek_fd30_to_0,
                            send_datagram_through_32, send_one_more_byte_on_21,
                            send_one_more_datagram, send_sigusr1, send_sigusr2,
                            send_to_abstract_dgram, send_to_chain_z, send_to_netlink_22, send_to_udp_22,
                            shut_writing_of_22,
                            unlock_flock_23, unmark_fanotify_30_file, unwatch_inotify_30_wd4,
                            watch_more_in_epoll_30, write_into_low_fd_pipe,
                            write_more_into_fifo_a, write_more_into_pipe,
                            write_into_pipe_43, write_more_into_pipe_31,
                            write_more_into_pipe_b)

# every program under test/zdtm (the launchers check nothing: the
# lazy-migrate mode's starts the others, pid_launch a test's squatter)
PROGRAMS = sorted(p.stem for p in (paths.ZDTM_SRC).glob("*.c")
                  if p.stem not in (PIDNS_LAUNCHER, PID_LAUNCHER))


LAZY_PROGRAMS = [p for p in PROGRAMS if p.startswith("lazy_")]


CASES = [
    (ZdtmTest("mem_anon", ("--size", "1M")), poke_region_page2, r"page 2 "),
    (ZdtmTest("mem_anon", ("--size", "1M")), zero_region_page0, r"page 0 .*all zeros"),
    (ZdtmTest("mem_sigbus"), poke_region_page2, r"wrong, the first is page 2$"),
    (ZdtmTest("mem_holes"), poke_readonly_part, r"read-only"),
    (ZdtmTest("heap_brk"), poke_heap, r"heap"),
    (ZdtmTest("stack_deep"), poke_deepest_frame, r"frame at depth 3000"),
    (ZdtmTest("mmap_file_private"), change_unwritten_file_page, r"page 1 .*differs"),
    (ZdtmTest("mmap_file_shared"), change_shared_file, r"page 0"),
    (ZdtmTest("mmap_anon_shared"), poke_shared_anon, r"shared page 5"),
    (ZdtmTest("fpu", ("--isa", "sse"), label="sse"), change_xmm5, r"xmm register 5"),
    (ZdtmTest("fpu", ("--isa", "avx"), cpu_flags=("avx",), label="avx"), change_xmm5,
     r"ymm register 5"),
    (ZdtmTest("fpu", ("--isa", "avx512"), cpu_flags=("avx512f", "avx512bw"),
              label="avx512"), change_xmm5, r"zmm register 5"),
    (ZdtmTest("fpu", ("--isa", "avx"), cpu_flags=("avx",), label="avx"), change_r12, r"r12"),
    (ZdtmTest("sigpending"), queue_blocked_sighup, r"pending"),
    (ZdtmTest("cwd_umask_rlimit"), lower_nofile, r"RLIMIT_NOFILE"),
    (ZdtmTest("files"), change_ro_data, r"ro\.data"),
    (ZdtmTest("argv_environ"), change_cmdline, r"cmdline"),
    (ZdtmTest("counter", ("--log", "counter.log", "--size", "1M", "--interval-ms", "20")),
     forge_first_log_line, r"counter\.log"),
    (ZdtmTest("busyloop"), poke_busyloop_step, r"accumulator"),
    (ZdtmTest("itimer"), poke_expected_itimer_interval, r"ITIMER_VIRTUAL interval"),
    (ZdtmTest("rseq"), poke_recorded_rseq_size, r"registration changed"),
    (ZdtmTest("vdso"), poke_recorded_vdso_line, r"vdso/vvar maps lines changed"),
    (ZdtmTest("sigactions"), poke_recorded_sigusr1_flags, rf"signal {int(signal.SIGUSR1)}: sa_flags"),
    (ZdtmTest("maps"), poke_recorded_maps, r"maps lines differ"),
    (ZdtmTest("thread_seccomp"), stop_the_thread, r"stopped counting after SIGTERM"),
    (ZdtmTest("seccomp_filter"), poke_expected_uname_errno,
     r"uname is not refused with the expected errno"),
    (ZdtmTest("seccomp_filter_threads"), poke_t2_getpriority_errno,
     r"after SIGTERM, t2: getpriority failed with 18, expected 7"),
    (ZdtmTest("seccomp_filter_inherit", tree=True), poke_child_getpriority_errno,
     r"after SIGTERM: the child's getpriority is not refused as expected"),
    (ZdtmTest("posix_timers_thread"), poke_recorded_worker_tid,
     r"after SIGTERM: 0 ticks reached the second thread and \d+ another one"),
    (ZdtmTest("threads_creds"), poke_t1_creds, r"t1: creds now:"),
    (ZdtmTest("threads_sleep_restart"), poke_min_wait, r"rel: the wait took \d+ ms, less than 60000"),
    (ZdtmTest("pidfd_child", tree=True), poke_expected_exit_status,
     r"the running child: waitid says pid \d+ code 1 status 7, expected pid \d+ exit 9"),
    (ZdtmTest("seccomp_strict"), poke_expected_reply, r"answered 0x62 to 'a', expected 'c'"),
    (ZdtmTest("thread"), poke_recorded_nice, r"thread 0 .*nice 0, was 7"),
    (ZdtmTest("threads_state"), poke_expected_byte, r"byte 'z', expected 1 byte 'y'"),
    (ZdtmTest("threads_lazy_stress"), poke_stress_page5, r"page 5 byte"),
    (ZdtmTest("threads_churn"), poke_expected_sum, r"numbers add up to"),
    (ZdtmTest("unsupported_fd", ("--kind", "pipe"), label="pipe"), write_more_into_pipe,
     r"fd 42: read 6 bytes"),
    (ZdtmTest("pipe"), write_more_into_pipe_b, r"fd 30: 5001 bytes in the pipe"),
    (ZdtmTest("fifo"), write_more_into_fifo_a, r"fd 20: 3001 bytes in the FIFO"),
    (ZdtmTest("eventfd"), add_to_eventfd_20, r"counters 43 3 0"),
    (ZdtmTest("signalfd"), send_sigusr2, r"fd 21: a signal was there"),
    (ZdtmTest("timerfd"), arm_timerfd_23, r"fd 23: armed after the restore"),
    (ZdtmTest("oom_score_adj"), raise_oom_score_adj, r"oom_score_adj is 600"),
    (ZdtmTest("loginuid"), poke_expected_loginuid, r"loginuid is 3 after the restore, expected 4"),
    (ZdtmTest("child_subreaper"), poke_expected_subreaper, r"child subreaper is 1"),
    (ZdtmTest("membarrier"), poke_recorded_membarrier, r"membarrier registrations are"),
    (ZdtmTest("unix_socketpair"), send_one_more_datagram, r"fd 31: expected an empty queue"),
    (ZdtmTest("epoll"), watch_more_in_epoll_30, r"fd 30 watches"),
    (ZdtmTest("inotify"), unwatch_inotify_30_wd4, r"fd 30 watches"),
    (ZdtmTest("fanotify"), unmark_fanotify_30_file, r"fd 30 marks"),
    (ZdtmTest("file_locks"), unlock_flock_23, r"fd 23 locks"),
    (ZdtmTest("pty"), resize_pty_21, r"fd 21: window size 24x80"),
    (ZdtmTest("unix_named"), send_to_abstract_dgram, r"fd 22: expected an empty queue"),
    # fd 31 is the write end of the pipe whose read end is in flight
    (ZdtmTest("unix_scm"), write_more_into_pipe_b, r"pipe read end: 3001 bytes"),
    (ZdtmTest("netlink"), send_to_netlink_22, r"fd 22: expected an empty queue"),
    (ZdtmTest("posix_timers"), poke_recorded_timer_id, r"timer_gettime\(none"),
    (ZdtmTest("pidfd"), send_sigusr1, r"SIGUSR1 in all"),
    (ZdtmTest("memfd"), change_memfd_23, r"fd 23: not"),
    (ZdtmTest("ghost_files"), change_ghost_20, r"fd 20: contents"),
    (ZdtmTest("link_remap"), link_lr_keep_again, r"fd 20: the file has 2 links"),
    (ZdtmTest("chroot_root"), chmod_croot, r"the root has mode 040755"),
    (ZdtmTest("memfd_map"), change_memfd_map_20, r"shared: the mapping differs"),
    (ZdtmTest("mmap_devzero"), poke_devzero_a_page3, r"parent: a page 3"),
    (ZdtmTest("sysv_ipc"), poke_sysv_a, r"A through its first attachment"),
    (ZdtmTest("tree", ("--children", "1")), poke_tree_inherited_page3,
     r"inherited page 3 is wrong"),
    (ZdtmTest("tree_forker"), poke_forker_child_memory, r"child \d+ ended with status 0x100"),
    (ZdtmTest("tree_shmem"), poke_shared_page20, r"shared page 20 is wrong"),
    (ZdtmTest("shmem_lazy_share"), poke_shared_page19, r"page 19 is wrong"),
    (ZdtmTest("tree_stress", ("--pages", "64")), poke_own_page5, r"root: page 5 of its own"),
    (ZdtmTest("tree_lazy_stress", ("--pages", "64", "--child-pages", "64", "--inherited-pages",
                                    "16")), poke_stress_page5, r"root: .*own page 5 byte"),
    (ZdtmTest("share_files"), seek_fd30_to_0, r"root after the restore: fd 30: offset 0"),
    (ZdtmTest("share_scm"), seek_child_fd30_to_0,
     r"the file received by the root: offset 0, expected 5"),
    (ZdtmTest("share_pipes"), write_more_into_pipe_31, r"pipe A: fd 30: byte 3000 "),
    (ZdtmTest("share_sockets"), send_datagram_through_32,
     r"datagram 3: fd 33: a message of 1 bytes"),
    (ZdtmTest("vma_flags", ("--state", "dontdump"), label="dontdump"), poke_region_page2_vma,
     r"after the restore: page 2 byte"),
    (ZdtmTest("tree_cow"), poke_cow_page3_same, r"page 3 is not shared between the root and child A"),
    (ZdtmTest("vma_advice_fork"), poke_region_page2, r"page 2 is wrong after the restore"),
    (ZdtmTest("vma_advice_fork"), poke_recorded_maps, r"the region's VMAs changed"),
    (ZdtmTest("share_kobj"), add_to_eventfd_30, r"fd 30: the eventfd reads 8, expected 7"),
    (ZdtmTest("share_fs"), poke_expected_umask, r"root after the restore: umask is 027, expected 022"),
    (ZdtmTest("share_fdtable"), write_into_pipe_43, r"child: read !pin from its pipe, not ping"),
    (ZdtmTest("unix_chain"), send_to_chain_z,
     r'C: A.s datagram after the restore: fd 30: read "!x1"'),
    (ZdtmTest("inet_sockets"), send_to_udp_22, r"fd 22: expected an empty queue"),
    (ZdtmTest("netns_own"), raise_netns_dgram_qlen,
     r"/proc/sys/net/unix/max_dgram_qlen: 78, expected 77"),
    (ZdtmTest("low_fds"), write_into_low_fd_pipe, r"the pipe at fd 4 received"),
    (ZdtmTest("tcp_syn_sent", cr_opts=("--tcp-established",)), poke_expected_write_seq,
     r"fd 21: initial sequence number"),
    (ZdtmTest("unix_backlog"), send_one_more_byte_on_21,
     r"fd 21's connection: expected an empty queue"),
    (ZdtmTest("tcp_established", ("--small",)), send_one_more_byte_on_21,
     r"fd 22: expected nothing to read"),
    (ZdtmTest("tcp_closing", cr_opts=("--tcp-established",)), shut_writing_of_22,
     r"fd 21 after the restore: CLOSING \(11\), expected FIN_WAIT1"),
    (ZdtmTest("lazy_fork"), poke_lazy_region_page5, r"parent: first read: page 5 "),
    (ZdtmTest("lazy_mremap"), poke_lazy_region_page5, r"moved region"),
    (ZdtmTest("lazy_madvise"), poke_lazy_region_page5, r"part before"),
    (ZdtmTest("lazy_munmap"), poke_lazy_region_page5, r"part before the hole"),
    (ZdtmTest("lazy_sighandler"), poke_lazy_region_page5, r"wrong data"),
    (ZdtmTest("lazy_split"), poke_lazy_region_page5, r"beside the splits: page 5:"),
    (ZdtmTest("lazy_touch_order"), poke_touch_order_first, r"page 96 \(touch 0\)"),
    (ZdtmTest("lazy_split_thread"), poke_lazy_region_page5, r"reader: page 5 "),
    (ZdtmTest("lazy_sparse_fork"), poke_sparse_page1, r"lazy page 1 \(offset 0x1000\)"),
    (ZdtmTest("lazy_churn", ("--threads", "2", "--seconds", "1")), poke_lazy_region_page5,
     r"chunk 0 page 5 byte"),
] + [(ZdtmTest(name), claim_lazy_without_restore, r"premise: .*not registered")
     for name in LAZY_PROGRAMS]


@pytest.mark.parametrize("spec,mutate,reason",
                         [pytest.param(*c, id=f"{c[0].id}-{c[1].__name__}") for c in CASES])
def test_check_fails_on_change(spec, mutate, reason, zdtm):
    task = zdtm(spec)
    mutate(task)
    expect_fail(task, reason)


def test_every_program_is_covered():
    """Each zdtm program has at least one case above (its check can fail),
    and each lazy_* program one more for its premise."""
    covered = {spec.name for spec, _, _ in CASES}
    missing = [p for p in PROGRAMS if p not in covered]
    assert not missing, f"no self-check case for {missing}"
    premise = {spec.name for spec, mutate, _ in CASES if mutate is claim_lazy_without_restore}
    assert premise == set(LAZY_PROGRAMS), (premise, LAZY_PROGRAMS)


def test_procstate_sees_changes(zdtm):
    """The /proc comparison of test_zdtm notices what it is meant to."""
    task = zdtm(ZdtmTest("sigpending"))
    before = task.snapshot()
    lower_nofile(task)
    os.kill(task.pid, signal.SIGHUP)
    changes = procstate.diff(before, task.snapshot())
    assert any(c.startswith("limits") for c in changes), changes
    assert any(c.startswith("status ShdPnd") for c in changes), changes
    task.stop()


def test_skipped_cpu_flags_are_real():
    """A sanity check of the skip logic: this machine has SSE2 for sure."""
    assert not missing_cpu_flags(ZdtmTest("x", cpu_flags=("sse2",)))
