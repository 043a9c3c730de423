"""Self-check mutations of a task's own state: memory, registers, pending
signals, limits, files it maps, and the records a program compares with
what cannot be changed from outside (timers, sigactions, the memory map);
and the lazy programs' pages and premise."""
import ctypes
import os
import resource
import signal

from .zdtm import LAZY_PREMISE_FILE
from .selfcheck import (ptrace, Stopped, poke, logged, addr, PTRACE_GETREGS, PTRACE_SETREGS,
                        PTRACE_GETFPREGS, PTRACE_SETFPREGS)


def poke_region_page2(task):
    poke(task.pid, addr(task, r"region (0x[0-9a-f]+)") + 2 * 4096 + 100, b"\x00\x01")


def zero_region_page0(task):
    poke(task.pid, addr(task, r"region (0x[0-9a-f]+)"), bytes(4096))


def poke_readonly_part(task):
    poke(task.pid, addr(task, r"span (0x[0-9a-f]+)") + 16 * 4096 + 7, b"\x55\xaa")


def poke_heap(task):
    poke(task.pid, addr(task, r"heap (0x[0-9a-f]+)") + 12345, b"\x01\x02\x03")


def poke_deepest_frame(task):
    poke(task.pid, addr(task, r"deepest frame (0x[0-9a-f]+)") + 17, b"\x00\xff")


def change_unwritten_file_page(task):
    with open(task.dir / "private.data", "r+b") as f:
        f.seek(4096 + 10)
        f.write(b"\xee\xee")


def change_shared_file(task):
    with open(task.dir / "shared.data", "r+b") as f:
        f.seek(30)
        f.write(b"\xee\xee")


def poke_shared_anon(task):
    poke(task.pid, addr(task, r"shared region (0x[0-9a-f]+)") + 5 * 4096, b"\x77")


def change_xmm5(task):
    buf = ctypes.create_string_buffer(512)
    with Stopped(task.pid):
        ptrace(PTRACE_GETFPREGS, task.pid, None, buf)
        buf[160 + 5 * 16] = bytes([buf[160 + 5 * 16][0] ^ 0xff])
        ptrace(PTRACE_SETFPREGS, task.pid, None, buf)


def change_r12(task):
    regs = (ctypes.c_ulonglong * 27)()
    with Stopped(task.pid):
        ptrace(PTRACE_GETREGS, task.pid, None, regs)
        regs[3] ^= 1	# r15, r14, r13, r12, ...
        ptrace(PTRACE_SETREGS, task.pid, None, regs)


def queue_blocked_sighup(task):
    os.kill(task.pid, signal.SIGHUP)


def lower_nofile(task):
    soft, hard = resource.prlimit(task.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(task.pid, resource.RLIMIT_NOFILE, (soft - 1, hard))


def change_ro_data(task):
    with open(task.dir / "ro.data", "r+b") as f:
        f.seek(1050)
        f.write(b"\x00\x00\x00")


def change_cmdline(task):
    with open(f"/proc/{task.pid}/stat") as f:
        arg_start = int(f.read().rsplit(")", 1)[1].split()[48 - 3])
    poke(task.pid, arg_start + 1, b"#")


def forge_first_log_line(task):
    with open(task.dir / "counter.log", "r+b") as f:
        assert f.read(7) == b"tick 1 "
        f.seek(5)
        f.write(b"7")


def poke_busyloop_step(task):
    poke(task.pid, addr(task, r"step (0x[0-9a-f]+)"), (5).to_bytes(8, "little"))


def poke_expected_itimer_interval(task):
    # struct itimerval starts with it_interval.tv_sec (500 s)
    poke(task.pid, addr(task, r"expected ITIMER_VIRTUAL (0x[0-9a-f]+)"),
         (501).to_bytes(8, "little"))


def poke_recorded_rseq_size(task):
    poke(task.pid, addr(task, r"recorded at (0x[0-9a-f]+)"), (64).to_bytes(4, "little"))


def poke_recorded_vdso_line(task):
    poke(task.pid, addr(task, r"recorded lines (0x[0-9a-f]+)"), b"0")


def poke_recorded_sigusr1_flags(task):
    # struct ksigaction: handler, flags, restorer, mask (8 bytes each)
    at = addr(task, r"recorded actions (0x[0-9a-f]+)") + signal.SIGUSR1 * 32 + 8
    poke(task.pid, at, b"\x5a")


def poke_recorded_maps(task):
    poke(task.pid, addr(task, r"recorded maps (0x[0-9a-f]+)"), b"0")


def stop_the_thread(task):
    poke(task.pid, addr(task, r"stop flag (0x[0-9a-f]+)"), (1).to_bytes(4, "little"))


def poke_expected_uname_errno(task):
    poke(task.pid, addr(task, r"expected uname errno at (0x[0-9a-f]+)"),
         (7).to_bytes(4, "little"))


def poke_expected_reply(task):
    poke(task.pid, addr(task, r"expected reply at (0x[0-9a-f]+)"), b"c")


def poke_expected_write_seq(task):
    seq = logged(task, r"expected write_seq at (0x[0-9a-f]+)")
    poke(task.pid, int(seq.group(1), 16), (0x5a5a5a5a).to_bytes(4, "little"))


def poke_t2_getpriority_errno(task):
    poke(task.pid, addr(task, r"t2's expected getpriority errno at (0x[0-9a-f]+)"),
         (7).to_bytes(4, "little"))


def poke_child_getpriority_errno(task):
    child = int(open(f"/proc/{task.pid}/task/{task.pid}/children").read().split()[0])
    poke(child, addr(task, r"the child's expected getpriority errno at (0x[0-9a-f]+)"),
         (7).to_bytes(4, "little"))


def poke_recorded_worker_tid(task):
    poke(task.pid, addr(task, r"recorded tid of the second thread at (0x[0-9a-f]+)"),
         (1).to_bytes(4, "little"))


def poke_t1_creds(task):
    poke(task.pid, addr(task, r"t1's recorded creds at (0x[0-9a-f]+)"), b"Uid:\t7")


def poke_min_wait(task):
    poke(task.pid, addr(task, r"shortest acceptable wait \(ms\) at (0x[0-9a-f]+)"),
         (60000).to_bytes(8, "little"))


def poke_expected_exit_status(task):
    poke(task.pid, addr(task, r"expected exit status at (0x[0-9a-f]+)"),
         (9).to_bytes(4, "little"))


def poke_recorded_nice(task):
    poke(task.pid, addr(task, r"recorded nice of thread 0 at (0x[0-9a-f]+)"),
         (7).to_bytes(4, "little"))


def poke_expected_byte(task):
    poke(task.pid, addr(task, r"expected byte at (0x[0-9a-f]+)"), b"y")


def poke_stress_page5(task):
    poke(task.pid, addr(task, r"area (0x[0-9a-f]+)") + 5 * 4096 + 100, b"\x00\x01")


def poke_expected_sum(task):
    a = addr(task, r"expected sum at (0x[0-9a-f]+)")
    with open(f"/proc/{task.pid}/mem", "r+b", buffering=0) as f:
        f.seek(a)
        v = int.from_bytes(f.read(8), "little")
        f.seek(a)
        f.write((v + (1 << 40)).to_bytes(8, "little"))


def poke_lazy_region_page5(task):
    poke(task.pid, addr(task, r"region (0x[0-9a-f]+)") + 5 * 4096 + 9, b"\x00\x5a")


def poke_touch_order_first(task):
    """The first page lazy_touch_order touches (page 96)."""
    poke(task.pid, addr(task, r"region (0x[0-9a-f]+)") + 96 * 4096 + 9, b"\x00\x5a")


def poke_sparse_page1(task):
    poke(task.pid, addr(task, r"span (0x[0-9a-f]+)") + 4096 + 33, b"\x00\x5a")


def poke_tree_inherited_page3(task):
    poke(task.pid, addr(task, r"inherited region (0x[0-9a-f]+)") + 3 * 4096 + 1, b"\x00\x42")


def poke_forker_child_memory(task):
    m = logged(task, r"child (\d+) memory (0x[0-9a-f]+)")
    poke(int(m.group(1)), int(m.group(2), 16) + 4096 + 3, b"\x00\x42")


def poke_shared_page20(task):
    poke(task.pid, addr(task, r"shared region (0x[0-9a-f]+)") + 20 * 4096 + 5, b"\x00\x42")


def poke_shared_page19(task):
    """A page that neither process of shmem_lazy_share writes."""
    poke(task.pid, addr(task, r"shared region (0x[0-9a-f]+)") + 19 * 4096 + 5, b"\x00\x42")


def poke_cow_page3_same(task):
    """Write child A's page 3 with the bytes it holds: its contents stay
    right, but the write gives A a copy of its own."""
    m = logged(task, r"region (0x[0-9a-f]+), child A (\d+)")
    at = int(m.group(1), 16) + 3 * 4096
    with open(f"/proc/{m.group(2)}/mem", "r+b", buffering=0) as f:
        f.seek(at)
        data = f.read(16)
        f.seek(at)
        f.write(data)


def poke_region_page2_vma(task):
    poke(task.pid, addr(task, r"region (0x[0-9a-f]+), state") + 2 * 4096 + 1, b"\x00\x42")


def poke_own_page5(task):
    poke(task.pid, addr(task, r"own region (0x[0-9a-f]+)") + 5 * 4096 + 9, b"\x00\x42")


def claim_lazy_without_restore(task):
    """The premise check: told the pages were left lazy when no restore
    ever happened, the program must refuse to pass."""
    (task.dir / LAZY_PREMISE_FILE).write_text("faults\n")
