/*
 * The three interval timers (setitimer): real, virtual, prof.  Read with
 * getitimer() inside the task, set by the blob as its very last step, so
 * they lose as little time as possible before the task runs.
 */
#include <sys/syscall.h>
#include <sys/time.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "dump/dump.h"

static int dump_itimers(struct dump_ctx *ctx, struct dump_task *t)
{
	static const char *names[3] = { "real", "virtual", "prof" };
	struct task_core *c = t->core;

	for (int which = 0; which < 3; which++) {
		struct itimerval it;
		ItimerEntry *e = &c->itimers[which];
		long res;
		int ret;

		ret = dump_remote_call(t, "getitimer", __NR_getitimer, which, t->scratch, 0, 0, &res);
		if (!ret)
			ret = dump_remote_read(t, t->scratch, &it, sizeof(it));
		if (ret)
			return ret;
		e->isec = it.it_interval.tv_sec;
		e->iusec = it.it_interval.tv_usec;
		e->vsec = it.it_value.tv_sec;
		e->vusec = it.it_value.tv_usec;
		if (e->vsec || e->vusec)
			pr_debug("task %d: %s itimer %llu.%06llu, interval %llu.%06llu", t->pid,
				 names[which], (unsigned long long)e->vsec,
				 (unsigned long long)e->vusec, (unsigned long long)e->isec,
				 (unsigned long long)e->iusec);
	}
	c->timers.real = &c->itimers[ITIMER_REAL];
	c->timers.virt = &c->itimers[ITIMER_VIRTUAL];
	c->timers.prof = &c->itimers[ITIMER_PROF];
	c->tc.timers = &c->timers;
	return 0;
}

/*
 * A periodic timer that expired while the task was frozen reads as value 0:
 * the kernel rearms it only when the task dequeues its SIGALRM (which the
 * pending signals carry over).  Setting value 0 would disarm it, so it
 * starts again with a full interval, as criu does.
 */
static void fill_itimer(struct rst_itimerval *t, const ItimerEntry *ie)
{
	if (!ie)
		return;
	t->interval_sec = ie->isec;
	t->interval_usec = ie->iusec;
	t->value_sec = ie->vsec;
	t->value_usec = ie->vusec;
	if (!ie->vsec && !ie->vusec) {
		t->value_sec = ie->isec;
		t->value_usec = ie->iusec;
	}
}

static int restore_itimers(struct attr_rst *r)
{
	const TaskTimersEntry *tt = r->core->tc->timers;

	if (!tt)
		return 0;
	fill_itimer(&r->args->itimers[0], tt->real);
	fill_itimer(&r->args->itimers[1], tt->virt);
	fill_itimer(&r->args->itimers[2], tt->prof);
	return 0;
}

const struct task_attr attr_itimers = {
	.name = "itimers",
	.scope = ATTR_PROCESS,
	.dump_stage = ATTR_DUMP_INJECT,
	.dump = dump_itimers,
	.restore = { [ATTR_RST_BLOB] = restore_itimers },
};
