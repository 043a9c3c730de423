/*
 * core-PID.img: the messages of struct task_core, linked into one
 * core_entry (leader: mtype, thread_info, tc, thread_core).
 */
#include <stdlib.h>

#include "common/log.h"
#include "dump/dump.h"

struct task_core *dump_core_alloc(void)
{
	struct task_core *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	core_entry__init(&c->core);
	thread_info_x86__init(&c->ti);
	user_x86_regs_entry__init(&c->gpregs);
	user_x86_fpregs_entry__init(&c->fpregs);
	user_x86_xsave_entry__init(&c->xsave);
	for (int i = 0; i < DUMP_NR_TLS; i++)
		user_desc_t__init(&c->tls[i]);
	task_core_entry__init(&c->tc);
	task_timers_entry__init(&c->timers);
	for (int i = 0; i < 3; i++)
		itimer_entry__init(&c->itimers[i]);
	task_rlimits_entry__init(&c->rlimits);
	for (int i = 0; i < DUMP_NR_RLIMITS; i++)
		rlimit_entry__init(&c->rlim[i]);
	for (int i = 0; i < DUMP_NR_SIGACTIONS; i++)
		sa_entry__init(&c->sa[i]);
	signal_queue_entry__init(&c->signals_s);
	signal_queue_entry__init(&c->signals_p);
	thread_core_entry__init(&c->thread);
	thread_sas_entry__init(&c->sas);
	rseq_entry__init(&c->rseq);
	creds_entry__init(&c->creds);

	c->core.mtype = CORE_ENTRY__MARCH__X86_64;
	c->core.thread_info = &c->ti;
	c->core.tc = &c->tc;
	c->core.thread_core = &c->thread;
	c->ti.gpregs = &c->gpregs;
	c->ti.fpregs = &c->fpregs;
	c->tc.comm = c->comm;
	return c;
}

/* What is not a task attribute: the task's state and its PF_* flags. */
int dump_core_basics(struct dump_task *t)
{
	struct task_core *c = t->core;
	struct proc_stat st;
	int ret;

	c->tc.task_state = t->state;
	c->tc.exit_code = 0;
	if (t->state == TASK_STATE_STOPPED) {
		c->tc.has_stop_signo = true;
		c->tc.stop_signo = t->stop_signo;
	}
	ret = dump_proc_stat(t, &st);
	if (ret)
		return ret;
	c->tc.flags = st.f[9];
	return 0;
}

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

void dump_core_free(struct task_core *c)
{
	if (!c)
		return;
	free_queue(&c->signals_p);
	free_queue(&c->signals_s);
	free(c->groups);
	free(c->posix);
	free(c->posix_p);
	free(c);
}

int dump_write_core(struct dump_ctx *ctx, struct dump_task *t)
{
	return dump_img_write_one(ctx, IMG_CORE, t->vpid, &t->core->core.base);
}
