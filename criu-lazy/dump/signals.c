/*
 * Signal state: the blocked mask and the pending queues come through ptrace
 * (PTRACE_GETSIGMASK, PTRACE_PEEKSIGINFO, which does not dequeue); the
 * actions are read with rt_sigaction(sig, NULL, scratch) inside the task.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "common/log.h"
#include "dump/dump.h"

#define SIGINFO_SIZE	128
#define PEEK_BATCH	32

/* The kernel's struct sigaction on x86_64 (what rt_sigaction fills). */
struct kernel_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

static void free_queue(SignalQueueEntry *q)
{
	for (size_t i = 0; i < q->n_signals; i++) {
		free(q->signals[i]->siginfo.data);
		free(q->signals[i]);
	}
	free(q->signals);
	q->signals = NULL;
	q->n_signals = 0;
}

static int add_siginfo(SignalQueueEntry *q, const void *raw)
{
	SiginfoEntry **grown, *e;

	grown = realloc(q->signals, (q->n_signals + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	q->signals = grown;
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	siginfo_entry__init(e);
	e->siginfo.data = malloc(SIGINFO_SIZE);
	if (!e->siginfo.data) {
		free(e);
		return -ENOMEM;
	}
	memcpy(e->siginfo.data, raw, SIGINFO_SIZE);
	e->siginfo.len = SIGINFO_SIZE;
	q->signals[q->n_signals++] = e;
	return 0;
}

static int peek_queue(struct dump_task *t, bool shared, SignalQueueEntry *q)
{
	uint8_t buf[PEEK_BATCH * SIGINFO_SIZE];
	struct __ptrace_peeksiginfo_args args = {
		.flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0,
		.nr = PEEK_BATCH,
	};

	for (;;) {
		long n = ptrace(PTRACE_PEEKSIGINFO, t->pid, &args, buf);

		if (n < 0)
			return dump_task_error(t, -errno,
					       "can't read the %s pending signals of task %d: %m",
					       shared ? "shared" : "private", t->pid);
		if (n == 0)
			return 0;
		for (long i = 0; i < n; i++) {
			siginfo_t *si = (siginfo_t *)(buf + i * SIGINFO_SIZE);
			int ret = add_siginfo(q, si);

			if (ret)
				return ret;
			pr_debug("task %d: pending %s signal %d (code %d)", t->pid,
				 shared ? "shared" : "private", si->si_signo, si->si_code);
		}
		args.off += n;
	}
}

int dump_signals(struct dump_task *t)
{
	struct task_core *c = t->core;
	uint64_t mask;
	int ret;

	if (ptrace(PTRACE_GETSIGMASK, t->pid, sizeof(mask), &mask))
		return dump_task_error(t, -errno, "can't get the signal mask of task %d: %m", t->pid);
	c->tc.blk_sigset = mask;
	pr_debug("task %d: blocked signals %#llx", t->pid, (unsigned long long)mask);

	ret = peek_queue(t, false, &c->signals_p);
	if (!ret)
		ret = peek_queue(t, true, &c->signals_s);
	if (ret) {
		free_queue(&c->signals_p);
		free_queue(&c->signals_s);
		return ret;
	}
	c->thread.signals_p = &c->signals_p;
	c->tc.signals_s = &c->signals_s;
	return 0;
}

int dump_sigactions(struct dump_task *t)
{
	struct task_core *c = t->core;
	int i = 0;

	for (int sig = 1; sig <= 64; sig++) {
		struct kernel_sigaction ka;
		SaEntry *sa;
		long res;
		int ret;

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		ret = dump_remote_call(t, "rt_sigaction", __NR_rt_sigaction, sig, 0, t->scratch, 8,
				       &res);
		if (!ret)
			ret = dump_remote_read(t, t->scratch, &ka, sizeof(ka));
		if (ret)
			return ret;

		sa = &c->sa[i];
		sa->sigaction = ka.handler;
		sa->flags = ka.flags;
		sa->restorer = ka.restorer;
		sa->mask = ka.mask;
		sa->has_compat_sigaction = true;
		sa->compat_sigaction = false;
		c->sa_p[i++] = sa;
		if (ka.handler)
			pr_debug("task %d: signal %d: handler %#llx flags %#llx mask %#llx", t->pid,
				 sig, (unsigned long long)ka.handler, (unsigned long long)ka.flags,
				 (unsigned long long)ka.mask);
	}
	c->tc.n_sigactions = i;
	c->tc.sigactions = c->sa_p;
	return 0;
}

void dump_signals_free(struct task_core *c)
{
	free_queue(&c->signals_p);
	free_queue(&c->signals_s);
}
