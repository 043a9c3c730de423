/*
 * Threads with state of their own.  Each of --threads threads (4 by
 * default) sets, differently from the others: a __thread value and its
 * fs_base, its gs_base, a GDT TLS slot (thread 1, when the kernel has
 * 32-bit emulation), its blocked mask, a private pending signal (one of
 * the real-time signals it blocks, queued to itself with a value of its
 * own), a sigaltstack, a
 * nice value and policy (SCHED_BATCH / SCHED_IDLE for some, SCHED_RR with an
 * RT priority for every fourth), its name, its
 * fsuid, its effective capabilities (thread 2 drops one), no_new_privs
 * (thread 3), a parent-death signal, and keeps glibc's robust list, rseq
 * area and clear_child_tid.  It records what it set and waits on a barrier
 * (a futex).  After SIGTERM every thread checks its own state from inside;
 * the main thread joins them.
 */
#include <asm/ldt.h>
#include <asm/prctl.h>
#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define MAX_THREADS	128
#define CAP_DROPPED	CAP_NET_RAW

struct expect {
	pid_t tid;
	unsigned long fs_base, gs_base, tid_address, robust_head;
	sigset_t mask;
	stack_t ss;
	int nice, policy, rt_prio, pdeath;
	char name[16];
	unsigned int fsuid;
	uint32_t cap_eff0;
	int nnp;
	int gdt_entry;			/* -1 if none */
	struct user_desc gdt;
};

static __thread unsigned long tls_value;
static struct expect expect[MAX_THREADS];
static char result[MAX_THREADS][200];
static pthread_barrier_t ready, check;
static long nr_threads = 4;

#define TFAIL(i, ...) do { snprintf(result[i], sizeof(result[i]), __VA_ARGS__); return; } while (0)

static unsigned long get_fs_base(void)
{
	unsigned long v = 0;

	syscall(SYS_arch_prctl, ARCH_GET_FS, &v);
	return v;
}

static unsigned long get_gs_base(void)
{
	unsigned long v = 0;

	syscall(SYS_arch_prctl, ARCH_GET_GS, &v);
	return v;
}

/* The real-time signal thread i blocks and has pending, and its value. */
#define PENDING_SIG(i)	(SIGRTMIN + (i) % 16)
#define PENDING_VAL(i)	(0x700 + (i))

static uint32_t cap_eff0(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return 0;
	return d[0].effective;
}

static unsigned int fsuid_now(void)
{
	char buf[4096], *p;
	unsigned int r, e, s, fs;

	/* thread-self: in a pid namespace of its own our tid is not /proc's */
	read_file("/proc/thread-self/status", buf, sizeof(buf));
	p = strstr(buf, "\nUid:");
	if (!p || sscanf(p + 5, "%u %u %u %u", &r, &e, &s, &fs) != 4)
		return -1;
	return fs;
}

/* Failures go to result[i]: with its own fsuid the thread may not be
 * able to write the outfile. */
static void set_state(int i, struct expect *e)
{
	static const int policies[] = { SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_RR };
	struct sched_param sp = { 0 };
	size_t len;

	e->tid = gettid();
	tls_value = 0x1000 + i;
	e->fs_base = get_fs_base();
	/* glibc leaves gs alone on x86-64: any canonical base is ours */
	e->gs_base = 0x5a0000000000ul + (unsigned long)i * 0x1000;
	if (syscall(SYS_arch_prctl, ARCH_SET_GS, e->gs_base))
		TFAIL(i, "ARCH_SET_GS: %m");

	sigemptyset(&e->mask);
	sigaddset(&e->mask, SIGTERM);
	sigaddset(&e->mask, PENDING_SIG(i));
	if (i % 2)
		sigaddset(&e->mask, SIGUSR1);
	pthread_sigmask(SIG_SETMASK, &e->mask, NULL);
	{
		siginfo_t si = { .si_signo = PENDING_SIG(i), .si_code = SI_QUEUE,
				 .si_pid = getpid(), .si_uid = getuid() };

		si.si_value.sival_int = PENDING_VAL(i);
		if (syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), PENDING_SIG(i), &si))
			TFAIL(i, "rt_tgsigqueueinfo: %m");
	}

	e->ss.ss_size = SIGSTKSZ + i * 4096;
	e->ss.ss_sp = malloc(e->ss.ss_size);
	e->ss.ss_flags = 0;
	if (!e->ss.ss_sp || sigaltstack(&e->ss, NULL))
		TFAIL(i, "sigaltstack: %m");

	e->policy = policies[i % 4];
	/* a real-time one (it only sleeps in barriers): an RT priority too */
	e->rt_prio = sp.sched_priority = e->policy == SCHED_RR ? 1 + i % 10 : 0;
	if (sched_setscheduler(0, e->policy, &sp))
		TFAIL(i, "sched_setscheduler(%d): %m", e->policy);
	e->nice = i % 20;
	if (e->policy != SCHED_IDLE && setpriority(PRIO_PROCESS, 0, e->nice))
		TFAIL(i, "setpriority: %m");
	if (e->policy == SCHED_IDLE)
		e->nice = getpriority(PRIO_PROCESS, 0);

	snprintf(e->name, sizeof(e->name), "zdtm-thr-%d", i);
	if (prctl(PR_SET_NAME, e->name))
		TFAIL(i, "PR_SET_NAME: %m");

	/* per thread: the raw syscalls, not libc's process-wide wrappers */
	e->fsuid = 1000 + i;
	syscall(SYS_setfsuid, e->fsuid);
	if (i == 2) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];

		if (syscall(SYS_capget, &h, d))
			TFAIL(i, "capget: %m");
		d[0].effective &= ~(1u << CAP_DROPPED);
		if (syscall(SYS_capset, &h, d))
			TFAIL(i, "capset: %m");
	}
	e->cap_eff0 = cap_eff0();
	if (i == 3 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		TFAIL(i, "PR_SET_NO_NEW_PRIVS: %m");
	e->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	/* after the creds: changing them clears it */
	e->pdeath = SIGURG;	/* ignored by default, whoever the parent is */
	if (prctl(PR_SET_PDEATHSIG, e->pdeath))
		TFAIL(i, "PR_SET_PDEATHSIG: %m");

	e->gdt_entry = -1;
	if (i == 1) {
		memset(&e->gdt, 0, sizeof(e->gdt));
		e->gdt.entry_number = -1;
		e->gdt.base_addr = 0x12345000;
		e->gdt.limit = 0xfff;
		e->gdt.seg_32bit = 1;
		e->gdt.useable = 1;
		/* without 32-bit emulation the kernel has no set_thread_area */
		if (!syscall(SYS_set_thread_area, &e->gdt))
			e->gdt_entry = e->gdt.entry_number;
		else if (errno != ENOSYS)
			TFAIL(i, "set_thread_area: %m");
	}

	if (prctl(PR_GET_TID_ADDRESS, &e->tid_address))
		TFAIL(i, "PR_GET_TID_ADDRESS: %m");
	if (syscall(SYS_get_robust_list, 0, &e->robust_head, &len))
		TFAIL(i, "get_robust_list: %m");
	if (!e->robust_head)
		TFAIL(i, "glibc registered no robust list");
}

static void check_state(int i, const struct expect *e)
{
	struct expect now;
	stack_t ss;
	struct sched_param sp;
	char name[16] = "";
	unsigned long head = 0;
	size_t len;
	int pdeath = 0;

	if (gettid() != e->tid)
		TFAIL(i, "tid %d, was %d", (int)gettid(), (int)e->tid);
	if (tls_value != 0x1000ul + i)
		TFAIL(i, "__thread value %#lx, expected %#lx", tls_value, 0x1000ul + i);
	if (get_fs_base() != e->fs_base)
		TFAIL(i, "fs_base %#lx, was %#lx", get_fs_base(), e->fs_base);
	if (get_gs_base() != e->gs_base)
		TFAIL(i, "gs_base %#lx, was %#lx", get_gs_base(), e->gs_base);
	pthread_sigmask(SIG_SETMASK, NULL, &now.mask);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&now.mask, s) != sigismember(&e->mask, s))
			TFAIL(i, "signal %d is %sblocked now", s, sigismember(&now.mask, s) ? "" : "not ");
	{
		/* its own signal, pending for it alone: still one, with its value */
		struct timespec zero = { 0, 0 };
		siginfo_t si;
		sigset_t one, pend;

		sigemptyset(&one);
		sigaddset(&one, PENDING_SIG(i));
		if (sigtimedwait(&one, &si, &zero) != PENDING_SIG(i))
			TFAIL(i, "signal %d is no longer pending: %m", PENDING_SIG(i));
		if (si.si_code != SI_QUEUE || si.si_value.sival_int != PENDING_VAL(i))
			TFAIL(i, "signal %d came with code %d value %#x, expected %d/%#x",
			      PENDING_SIG(i), si.si_code, si.si_value.sival_int, SI_QUEUE,
			      PENDING_VAL(i));
		sigpending(&pend);
		if (sigismember(&pend, PENDING_SIG(i)))
			TFAIL(i, "signal %d is pending twice", PENDING_SIG(i));
	}
	if (sigaltstack(NULL, &ss))
		TFAIL(i, "sigaltstack: %m");
	if (ss.ss_sp != e->ss.ss_sp || ss.ss_size != e->ss.ss_size || ss.ss_flags != e->ss.ss_flags)
		TFAIL(i, "sigaltstack %p/%zu/%d, was %p/%zu/%d", ss.ss_sp, ss.ss_size, ss.ss_flags,
		      e->ss.ss_sp, e->ss.ss_size, e->ss.ss_flags);
	if (sched_getscheduler(0) != e->policy || sched_getparam(0, &sp) ||
	    sp.sched_priority != e->rt_prio)
		TFAIL(i, "policy %d prio %d, was %d/%d", sched_getscheduler(0), sp.sched_priority,
		      e->policy, e->rt_prio);
	errno = 0;
	if (getpriority(PRIO_PROCESS, 0) != e->nice)
		TFAIL(i, "nice %d, was %d", getpriority(PRIO_PROCESS, 0), e->nice);
	prctl(PR_GET_NAME, name);
	if (strcmp(name, e->name))
		TFAIL(i, "name '%s', was '%s'", name, e->name);
	prctl(PR_GET_PDEATHSIG, &pdeath);
	if (pdeath != e->pdeath)
		TFAIL(i, "pdeath signal %d, was %d", pdeath, e->pdeath);
	if (fsuid_now() != e->fsuid)
		TFAIL(i, "fsuid %u, was %u", fsuid_now(), e->fsuid);
	if (cap_eff0() != e->cap_eff0)
		TFAIL(i, "effective caps %#x, were %#x", cap_eff0(), e->cap_eff0);
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != e->nnp)
		TFAIL(i, "no_new_privs %d, was %d", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), e->nnp);
	if (e->gdt_entry >= 0) {
		struct user_desc d = { .entry_number = e->gdt_entry };

		if (syscall(SYS_get_thread_area, &d))
			TFAIL(i, "get_thread_area(%d): %m", e->gdt_entry);
		if (d.base_addr != e->gdt.base_addr || d.limit != e->gdt.limit ||
		    d.seg_32bit != e->gdt.seg_32bit || d.useable != e->gdt.useable)
			TFAIL(i, "TLS slot %d base %#x limit %#x, was %#x/%#x", e->gdt_entry,
			      d.base_addr, d.limit, e->gdt.base_addr, e->gdt.limit);
	}
	if (prctl(PR_GET_TID_ADDRESS, &now.tid_address) || now.tid_address != e->tid_address)
		TFAIL(i, "clear_child_tid %#lx, was %#lx", now.tid_address, e->tid_address);
	if (syscall(SYS_get_robust_list, 0, &head, &len) || head != e->robust_head)
		TFAIL(i, "robust list %#lx, was %#lx", head, e->robust_head);
	if (__rseq_size) {
		struct rseq *area = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
		unsigned int sizes[] = { __rseq_size < 32 ? 32 : __rseq_size, 32 };
		int busy = 0;

		for (int k = 0; k < 2 && !busy; k++)
			busy = syscall(SYS_rseq, area, sizes[k], 0, RSEQ_SIG) && errno == EBUSY;
		if (!busy)
			TFAIL(i, "rseq is no longer registered at %p", (void *)area);
	}
}

static void *worker(void *arg)
{
	int i = (int)(long)arg;

	set_state(i, &expect[i]);
	pthread_barrier_wait(&ready);
	pthread_barrier_wait(&check);
	check_state(i, &expect[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	const struct test_opt opts[] = {
		{ "threads", TEST_OPT_INT, &nr_threads, 0, "number of threads (1..128)" },
		{ NULL },
	};
	pthread_t th[MAX_THREADS];
	sigset_t term, old;

	test_init(argc, argv, opts);
	if (nr_threads < 1 || nr_threads > MAX_THREADS)
		fail("--threads %ld: 1..%d", nr_threads, MAX_THREADS);
	pthread_barrier_init(&ready, NULL, nr_threads + 1);
	pthread_barrier_init(&check, NULL, nr_threads + 1);

	/* the threads must not take the SIGTERM meant for the main thread */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	for (long i = 0; i < nr_threads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)i))
			fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_barrier_wait(&ready);
	for (long i = 0; i < nr_threads; i++)
		if (result[i][0])
			fail("thread %ld could not set its state: %s", i, result[i]);
	test_msg("recorded nice of thread 0 at %p", (void *)&expect[0].nice);

	test_daemon();
	test_waitsig();

	pthread_barrier_wait(&check);
	for (long i = 0; i < nr_threads; i++)
		if (pthread_join(th[i], NULL))
			fail("pthread_join failed");
	for (long i = 0; i < nr_threads; i++)
		if (result[i][0])
			fail("thread %ld (tid %d): %s", i, (int)expect[i].tid, result[i]);
	pass();
}
