/*
 * Raw x86_64 system calls for the restorer blob: no libc, no errno.  Every
 * wrapper returns what the kernel returns (a negative errno on failure).
 */
#ifndef CRIU_LAZY_PIE_SYSCALLS_H
#define CRIU_LAZY_PIE_SYSCALLS_H

#include <stdint.h>

#define __NR_close			3
#define __NR_mprotect			10
#define __NR_munmap			11
#define __NR_mremap			25
#define __NR_madvise			28
#define __NR_ioctl			16
#define __NR_sendmsg			46
#define __NR_setitimer			38
#define __NR_setresuid			117
#define __NR_setresgid			119
#define __NR_setfsuid			122
#define __NR_setfsgid			123
#define __NR_capset			126
#define __NR_setpriority		141
#define __NR_sched_setscheduler		144
#define __NR_rt_sigqueueinfo		129
#define __NR_sigaltstack		131
#define __NR_prctl			157
#define __NR_setgroups			116
#define __NR_set_tid_address		218
#define __NR_futex			202
#define __NR_timer_create		222
#define __NR_timer_settime		223
#define __NR_set_robust_list		273
#define __NR_rt_tgsigqueueinfo		297
#define __NR_prlimit64			302
#define __NR_userfaultfd		323
#define __NR_seccomp			317
#define __NR_rseq			334
#define __NR_clone3			435
#define __NR_close_range		436

static inline long sys_call1(long nr, long a1)
{
	long ret;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1) : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call2(long nr, long a1, long a2)
{
	long ret;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call3(long nr, long a1, long a2, long a3)
{
	long ret;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call4(long nr, long a1, long a2, long a3, long a4)
{
	register long r10 __asm__("r10") = a4;
	long ret;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call5(long nr, long a1, long a2, long a3, long a4, long a5)
{
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	long ret;

	__asm__ volatile("syscall" : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	long ret;

	__asm__ volatile("syscall" : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define SYS_A(x) ((long)(x))

static inline long sys_munmap(uint64_t addr, uint64_t len)
{
	return sys_call2(__NR_munmap, SYS_A(addr), SYS_A(len));
}

static inline long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, long flags,
			      uint64_t new_addr)
{
	return sys_call5(__NR_mremap, SYS_A(old), SYS_A(old_len), SYS_A(new_len), flags,
			 SYS_A(new_addr));
}

static inline long sys_mprotect(uint64_t addr, uint64_t len, long prot)
{
	return sys_call3(__NR_mprotect, SYS_A(addr), SYS_A(len), prot);
}

static inline long sys_madvise(uint64_t addr, uint64_t len, long advice)
{
	return sys_call3(__NR_madvise, SYS_A(addr), SYS_A(len), advice);
}

static inline long sys_prctl(long op, long a2, long a3, long a4, long a5)
{
	return sys_call5(__NR_prctl, op, a2, a3, a4, a5);
}

static inline long sys_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
	return sys_call3(__NR_close_range, first, last, flags);
}

static inline long sys_close(int fd)
{
	return sys_call1(__NR_close, fd);
}

static inline long sys_rt_sigqueueinfo(long tgid, long sig, const void *info)
{
	return sys_call3(__NR_rt_sigqueueinfo, tgid, sig, SYS_A(info));
}

static inline long sys_rt_tgsigqueueinfo(long tgid, long tid, long sig, const void *info)
{
	return sys_call4(__NR_rt_tgsigqueueinfo, tgid, tid, sig, SYS_A(info));
}

static inline long sys_setgroups(long n, const uint32_t *list)
{
	return sys_call2(__NR_setgroups, n, SYS_A(list));
}

static inline long sys_setresuid(long r, long e, long s)
{
	return sys_call3(__NR_setresuid, r, e, s);
}

static inline long sys_setresgid(long r, long e, long s)
{
	return sys_call3(__NR_setresgid, r, e, s);
}

static inline long sys_setfsuid(long id)
{
	return sys_call1(__NR_setfsuid, id);
}

static inline long sys_setfsgid(long id)
{
	return sys_call1(__NR_setfsgid, id);
}

static inline long sys_capset(void *hdr, void *data)
{
	return sys_call2(__NR_capset, SYS_A(hdr), SYS_A(data));
}

static inline long sys_rseq(uint64_t area, uint32_t len, int flags, uint32_t sig)
{
	return sys_call4(__NR_rseq, SYS_A(area), len, flags, sig);
}

static inline long sys_set_robust_list(uint64_t head, uint64_t len)
{
	return sys_call2(__NR_set_robust_list, SYS_A(head), SYS_A(len));
}

static inline long sys_set_tid_address(uint64_t addr)
{
	return sys_call1(__NR_set_tid_address, SYS_A(addr));
}

static inline long sys_sigaltstack(const void *ss, void *old)
{
	return sys_call2(__NR_sigaltstack, SYS_A(ss), SYS_A(old));
}

static inline long sys_setitimer(long which, const void *val, void *old)
{
	return sys_call3(__NR_setitimer, which, SYS_A(val), SYS_A(old));
}

static inline long sys_timer_create(long clock, void *sev, int32_t *id)
{
	return sys_call3(__NR_timer_create, clock, SYS_A(sev), SYS_A(id));
}

static inline long sys_timer_settime(long id, long flags, const void *val, void *old)
{
	return sys_call4(__NR_timer_settime, id, flags, SYS_A(val), SYS_A(old));
}

static inline long sys_prlimit64(long pid, long res, const void *new_rlim, void *old)
{
	return sys_call4(__NR_prlimit64, pid, res, SYS_A(new_rlim), SYS_A(old));
}

#endif
