/*
 * POSIX timers (timer_create) of a process.
 *
 * Dump: /proc/PID/timers lists each timer's id, signal, sigev_value,
 * notification (signal, none, thread; to the process or, with
 * SIGEV_THREAD_ID, to one thread) and clock; timer_gettime() and
 * timer_getoverrun() run inside the task give its interval, its time left
 * and the overrun count of its last delivered signal.
 *
 * Restore: the blob creates each timer again with its dumped id and arms
 * it with its time left (pie/posix-timers.c), as its last step.  A timer
 * whose time left reads 0 while armed (its signal is pending, the kernel
 * forwards it only on delivery) starts again with a full interval, as criu
 * does.  A timer whose own signal is pending at the dump (SI_TIMER with
 * its id in a pending queue) is made to expire at once instead, so that
 * its signal is pending again as the timer's own, not as a copy: it
 * arrives with its si_timerid and si_value, later expirations count as its
 * overruns, and the next dump finds one signal, not two.  Its phase is
 * then the restore's.  The kernel has no way to set an overrun count: the
 * overruns counted before the dump are lost (criu loses them too), and
 * timer_getoverrun() says 0 until the timer's next signal is delivered.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"
#include "restore/restore.h"
#include "restore/images.h"

#define PR_TIMER_CREATE_RESTORE_IDS	77
#define PR_TIMER_CREATE_RESTORE_IDS_GET	2

#define SIGEV_SIGNAL_	0
#define SIGEV_NONE_	1
#define SIGEV_THREAD_	2
#define SIGEV_THREAD_ID_ 4

#define TIMERS_TEXT_MAX	(1 << 20)

struct kernel_itimerspec {
	int64_t interval_sec, interval_nsec;
	int64_t value_sec, value_nsec;
};

/*
 * The thread a SIGEV_THREAD_ID timer notifies, from the number /proc shows
 * (in our pid namespace) to the task's own view: the leader or any other
 * thread (their vtids are known since dump_check_threads()).
 */
static int notify_vtid(struct dump_task *t, int id, long tid, int32_t *vtid)
{
	if (tid == t->pid) {
		*vtid = t->vpid;
		return 0;
	}
	for (size_t i = 1; i < t->nr_threads; i++) {
		if (t->threads[i].tid == tid) {
			*vtid = t->threads[i].vtid;
			return 0;
		}
	}
	pr_err("POSIX timer %d of task %d notifies thread %ld, which is not a thread of "
	       "the task", id, t->pid, tid);
	return -EOPNOTSUPP;
}

/* A thread's own id (the task's view), for a per-thread CPU clock. */
static bool is_vtid(const struct dump_task *t, long vtid)
{
	for (size_t i = 0; i < t->nr_threads; i++)
		if (t->threads[i].vtid == vtid)
			return true;
	return vtid == t->vpid;
}

/* "signal/tid.123" -> SIGEV_* bits and the pid or tid. */
static int parse_notify(const char *s, uint32_t *notify, long *who)
{
	static const struct { const char *name; uint32_t kind; } kinds[] = {
		{ "signal/", SIGEV_SIGNAL_ }, { "none/", SIGEV_NONE_ }, { "thread/", SIGEV_THREAD_ },
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t len = strlen(kinds[i].name);

		if (strncmp(s, kinds[i].name, len))
			continue;
		s += len;
		*notify = kinds[i].kind;
		if (!strncmp(s, "tid.", 4))
			*notify |= SIGEV_THREAD_ID_;
		else if (strncmp(s, "pid.", 4))
			return -EINVAL;
		*who = strtol(s + 4, NULL, 10);
		return 0;
	}
	return -EINVAL;
}

static PosixTimerEntry *add_timer(struct task_core *c)
{
	PosixTimerEntry *grown, **grown_p;

	grown = realloc(c->posix, (c->nr_posix + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	c->posix = grown;
	grown_p = realloc(c->posix_p, (c->nr_posix + 1) * sizeof(*grown_p));
	if (!grown_p)
		return NULL;
	c->posix_p = grown_p;
	posix_timer_entry__init(&c->posix[c->nr_posix]);
	return &c->posix[c->nr_posix++];
}

/* One "ID: ..." block of /proc/PID/timers, up to the next one. */
static int parse_timer(struct dump_task *t, const char *block, PosixTimerEntry *e)
{
	const char *sig = strstr(block, "\nsignal: ");
	const char *notify = strstr(block, "\nnotify: ");
	const char *clock = strstr(block, "\nClockID: ");
	unsigned long long value;
	long who = 0;
	int signo, clock_id;
	uint32_t kind;

	e->it_id = strtoul(block + 4, NULL, 10);
	if (!sig || sscanf(sig, "\nsignal: %d/%llx", &signo, &value) != 2 || !notify ||
	    parse_notify(notify + 9, &kind, &who) || !clock ||
	    sscanf(clock, "\nClockID: %d", &clock_id) != 1) {
		pr_err("can't parse POSIX timer %u in /proc/%d/timers", e->it_id, t->pid);
		return -EINVAL;
	}
	/* a CPU clock: ~pid << 3 | per-thread << 2 | kind, pid 0 = the caller's;
	 * a per-thread one may count any thread of the task */
	if (clock_id < 0 && ~(clock_id >> 3) != 0 && ~(clock_id >> 3) != t->vpid &&
	    !((clock_id & 4) && is_vtid(t, ~(clock_id >> 3)))) {
		pr_err("POSIX timer %u of task %d counts the CPU time of process %d (clock %d), "
		       "which is not being dumped", e->it_id, t->pid, ~(clock_id >> 3), clock_id);
		return -EOPNOTSUPP;
	}
	e->clock_id = (uint32_t)clock_id;
	e->si_signo = signo;
	e->sival_ptr = value;
	e->it_sigev_notify = kind;
	if (kind & SIGEV_THREAD_ID_) {
		e->has_notify_thread_id = true;
		return notify_vtid(t, e->it_id, who, &e->notify_thread_id);
	}
	return 0;
}

/* Interval, time left and overruns, from inside the task. */
static int read_timer(struct dump_task *t, PosixTimerEntry *e)
{
	struct kernel_itimerspec its;
	long res;
	int ret;

	ret = dump_remote_call(t, "timer_gettime", __NR_timer_gettime, e->it_id, t->scratch, 0, 0,
			       &res);
	if (!ret)
		ret = dump_remote_read(t, t->scratch, &its, sizeof(its));
	if (!ret)
		ret = dump_remote_call(t, "timer_getoverrun", __NR_timer_getoverrun, e->it_id, 0, 0,
				       0, &res);
	if (ret)
		return ret;
	e->isec = its.interval_sec;
	e->insec = its.interval_nsec;
	e->vsec = its.value_sec;
	e->vnsec = its.value_nsec;
	e->overrun = res;
	pr_debug("task %d: POSIX timer %u: clock %u notify %u signal %u value %#llx, "
		 "%lld.%09lld left, interval %lld.%09lld, overrun %ld", t->pid, e->it_id,
		 e->clock_id, e->it_sigev_notify, e->si_signo, (unsigned long long)e->sival_ptr,
		 (long long)its.value_sec, (long long)its.value_nsec,
		 (long long)its.interval_sec, (long long)its.interval_nsec, res);
	return 0;
}

static int dump_posix_timers(struct dump_ctx *ctx, struct dump_task *t)
{
	struct task_core *c = t->core;
	char *text, *p;
	int ret;

	text = malloc(TIMERS_TEXT_MAX);
	if (!text)
		return -ENOMEM;
	ret = dump_proc_read(t, "timers", text, TIMERS_TEXT_MAX);
	if (ret >= TIMERS_TEXT_MAX - 1) {
		pr_err("task %d has too many POSIX timers (/proc/%d/timers is over %d bytes)",
		       t->pid, t->pid, TIMERS_TEXT_MAX);
		ret = -E2BIG;
	}
	if (ret < 0)
		goto out;
	ret = 0;
	for (p = text; p && *p && !ret; ) {
		char *next = strstr(p, "\nID: ");
		PosixTimerEntry *e;

		if (strncmp(p, "ID: ", 4)) {
			pr_err("can't parse /proc/%d/timers at \"%.20s\"", t->pid, p);
			ret = -EINVAL;
			break;
		}
		if (next)
			*next = '\0';	/* the block ends where the next one starts */
		e = add_timer(c);
		ret = e ? parse_timer(t, p, e) : -ENOMEM;
		if (!ret)
			ret = read_timer(t, e);
		p = next ? next + 1 : NULL;
	}
out:
	free(text);
	if (ret)
		return ret;
	for (size_t i = 0; i < c->nr_posix; i++)
		c->posix_p[i] = &c->posix[i];
	c->timers.n_posix = c->nr_posix;
	c->timers.posix = c->posix_p;
	return 0;
}

static int timer_kind_ok(const PosixTimerEntry *e)
{
	switch (e->it_sigev_notify) {
	case SIGEV_NONE_:
		return 1;
	case SIGEV_SIGNAL_:
	case SIGEV_THREAD_:
	case SIGEV_SIGNAL_ | SIGEV_THREAD_ID_:
		return e->si_signo >= 1 && e->si_signo <= 64;
	}
	return 0;
}

static int check_posix_timers(pid_t pid, const CoreEntry *core)
{
	const TaskTimersEntry *tt = core->tc->timers;
	long state;

	if (!tt || !tt->n_posix)
		return 0;
	for (size_t i = 0; i < tt->n_posix; i++) {
		const PosixTimerEntry *e = tt->posix[i];

		if (!timer_kind_ok(e)) {
			pr_err("core-%d.img: POSIX timer %u: notification %u with signal %u is "
			       "not one timer_create() takes", pid, e->it_id, e->it_sigev_notify,
			       e->si_signo);
			return -EINVAL;
		}
		if ((e->it_sigev_notify & SIGEV_THREAD_ID_) && !e->has_notify_thread_id) {
			pr_err("core-%d.img: POSIX timer %u notifies one thread, but not which",
			       pid, e->it_id);
			return -EINVAL;
		}
		if (e->insec >= 1000000000 || e->vnsec >= 1000000000 ||
		    (int64_t)e->isec < 0 || (int64_t)e->vsec < 0) {
			pr_err("core-%d.img: POSIX timer %u has an invalid time", pid, e->it_id);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (tt->posix[j]->it_id == e->it_id) {
				pr_err("core-%d.img: POSIX timer %u is there twice", pid, e->it_id);
				return -EINVAL;
			}
		}
		if ((int32_t)e->clock_id < 0 && ~((int32_t)e->clock_id >> 3) != 0 &&
		    ~((int32_t)e->clock_id >> 3) != pid && !(e->clock_id & 4)) {
			pr_err("core-%d.img: POSIX timer %u counts the CPU time of process %d, "
			       "which is not being restored", pid, e->it_id,
			       ~((int32_t)e->clock_id >> 3));
			return -EINVAL;
		}
		if ((int32_t)e->it_id < 0) {
			pr_err("core-%d.img: POSIX timer id %u is out of range", pid, e->it_id);
			return -EINVAL;
		}
	}
	state = prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0);
	if (state < 0) {
		pr_err("core-%d.img: the task has %zu POSIX timers, and this kernel cannot create "
		       "one with a given id (prctl PR_TIMER_CREATE_RESTORE_IDS: %m)", pid,
		       tt->n_posix);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* Is a signal of timer @e pending (SI_TIMER, its id and signal)? */
static bool is_tid(const struct rst_images *ri, pid_t tid)
{
	for (size_t i = 0; i < ri->nr_threads; i++)
		if (ri->tids[i] == tid)
			return true;
	return false;
}

/* The threads a timer names (its target, a per-thread CPU clock) are the
 * task's: checked once its threads are loaded. */
int rst_posix_timers_check_threads(const struct rst_images *ri)
{
	const TaskTimersEntry *tt = ri->core->tc->timers;

	for (size_t i = 0; tt && i < tt->n_posix; i++) {
		const PosixTimerEntry *e = tt->posix[i];
		int32_t clock_pid = ~((int32_t)e->clock_id >> 3);

		if ((e->it_sigev_notify & SIGEV_THREAD_ID_) && !is_tid(ri, e->notify_thread_id)) {
			pr_err("core-%d.img: POSIX timer %u notifies thread %d, which is not a "
			       "thread of the task", ri->pid, e->it_id, e->notify_thread_id);
			return -EINVAL;
		}
		if ((int32_t)e->clock_id < 0 && (e->clock_id & 4) && clock_pid &&
		    !is_tid(ri, clock_pid)) {
			pr_err("core-%d.img: POSIX timer %u counts the CPU time of thread %d, "
			       "which is not a thread of the task", ri->pid, e->it_id, clock_pid);
			return -EINVAL;
		}
	}
	return 0;
}

/* Its signal is pending: in the process's queue or in a thread's own. */
static bool signal_pending(const struct rst_images *ri, const PosixTimerEntry *e)
{
	for (size_t k = 0; k <= ri->nr_threads; k++) {
		const SignalQueueEntry *q = k == ri->nr_threads ? ri->core->tc->signals_s :
					    ri->cores[k]->thread_core->signals_p;

		for (size_t i = 0; q && i < q->n_signals; i++) {
			const siginfo_t *si = (const siginfo_t *)q->signals[i]->siginfo.data;

			if (q->signals[i]->siginfo.len == RST_SIGINFO_SIZE &&
			    si->si_code == SI_TIMER && si->si_signo == (int)e->si_signo &&
			    si->si_timerid == (int)e->it_id)
				return true;
		}
	}
	return false;
}

static size_t posix_timers_size(const struct rst_images *ri, const CoreEntry *core)
{
	const TaskTimersEntry *tt = core->tc->timers;

	(void)ri;
	return tt ? tt->n_posix * sizeof(struct rst_posix_timer) : 0;
}

static int restore_posix_timers(struct attr_rst *r)
{
	const TaskTimersEntry *tt = r->core->tc->timers;
	struct rst_posix_timer *v;

	if (!tt || !tt->n_posix)
		return 0;
	v = attr_args_alloc(r, tt->n_posix * sizeof(*v));
	for (size_t i = 0; i < tt->n_posix; i++) {
		const PosixTimerEntry *e = tt->posix[i];

		v[i] = (struct rst_posix_timer){
			.id = e->it_id, .clock = (int32_t)e->clock_id, .signo = e->si_signo,
			.notify = e->it_sigev_notify, .value = e->sival_ptr,
			.tid = e->has_notify_thread_id ? e->notify_thread_id : 0,
			.interval_sec = e->isec, .interval_nsec = e->insec,
			.value_sec = e->vsec, .value_nsec = e->vnsec,
		};
		v[i].fire_now = e->it_sigev_notify != SIGEV_NONE_ && signal_pending(r->ri, e);
		/* armed with its signal pending: rearmed on delivery, reads 0 */
		if (!e->vsec && !e->vnsec) {
			v[i].value_sec = e->isec;
			v[i].value_nsec = e->insec;
		}
		if (e->overrun)
			pr_info("task %d: POSIX timer %u had %u overruns: its count restarts from 0",
				r->pid, e->it_id, e->overrun);
	}
	r->args->posix_timers = (uint64_t)(uintptr_t)v;
	r->args->nr_posix_timers = tt->n_posix;
	return 0;
}

const struct task_attr attr_posix_timers = {
	.name = "posix-timers",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_posix_timers,
	.check = check_posix_timers,
	.args_size = posix_timers_size,
	.restore = { [ATTR_RST_BLOB] = restore_posix_timers },
};
