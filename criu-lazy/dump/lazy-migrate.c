/*
 * dump --lazy-pages [--address A] --port P: lazy migration from the live
 * task (spec 4.5).
 *
 * The dump writes every image but the data of the lazy pages: their
 * pagemap entries are PE_LAZY alone (pages.c records them here as runs).
 * The task stays frozen under ptrace, and the dump becomes a lazy page
 * server over the task's own memory (pageserver/ps-store-live.c, one
 * process_vm_readv for many replies; ps-server.c): the destination's
 * lazy-pages daemon asks for the pages (GET dst_id = the pid of the images)
 * on its fault and background connections.  The listening socket is made
 * before the task is frozen, so a port in use fails the dump before it has
 * touched anything; readiness (one zero byte on --status-fd) comes after
 * the images are complete.  The time before that never includes reading
 * the lazy memory.
 *
 * Every session ended with CLOSE: the destination has what it wants, the
 * dump succeeded, and the task is killed (left stopped with -s, running
 * with -R).  A session that ends otherwise (the daemon died, the network
 * broke, a request we do not serve) or a signal fails the dump, and the
 * source task must not be lost:
 *   - no destination ever connected: it is resumed, as after any failed
 *     dump (CRIU's rule), or left stopped with -s;
 *   - a destination connected: its copy may have run, and two copies must
 *     not both go on from the same state, so the task is left stopped
 *     (running with -R) for the user to resume (SIGCONT) once the copy is
 *     gone, or to kill.
 * One error line says what happened and where the task is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/array.h"
#include "common/evloop.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "common/tls.h"
#include "dump/dump.h"
#include "pageserver/ps-proto.h"

int dump_lazy_listen(struct dump_ctx *ctx)
{
	struct opts *o = ctx->o;

	if (!o->port) {
		pr_err("dump --lazy-pages serves the lazy pages over TCP: it needs --port P "
		       "(and optionally --address A)");
		return -EINVAL;
	}
	/* before anything is frozen: a missing certificate fails the dump here */
	return ps_server_listen(&ctx->srv, o->address, o->port) ?:
	       (o->tls.enabled ? tls_creds_load(&o->tls, &ctx->srv.tls) : 0);
}

int dump_lazy_add_run(struct dump_task *t, uint64_t vaddr, uint64_t nr_pages)
{
	struct ps_run *last = t->nr_lazy_runs ? &t->lazy_runs[t->nr_lazy_runs - 1] : NULL;

	if (last && last->vaddr + last->nr_pages * PS_PAGE_SIZE == vaddr) {
		last->nr_pages += nr_pages;
		return 0;
	}
	if (ARRAY_GROW(t->lazy_runs, t->cap_lazy_runs, t->nr_lazy_runs + 1, 64))
		return -ENOMEM;
	t->lazy_runs[t->nr_lazy_runs++] = (struct ps_run){ vaddr, nr_pages, 0 };
	return 0;
}

/* Every live process of the tree, with its lazy runs (the store's now). */
static int lazy_store_fill(struct dump_ctx *ctx)
{
	int ret = ps_store_live_new(&ctx->lazy_store);

	for (size_t i = 0; i < ctx->nr_tasks && !ret; i++) {
		struct dump_task *t = ctx->tasks[i];

		if (t->zombie)
			continue;
		ret = ps_store_live_add(ctx->lazy_store, t->vpid, t->pid, t->lazy_runs,
					t->nr_lazy_runs);
		t->lazy_runs = NULL;
		t->nr_lazy_runs = t->cap_lazy_runs = 0;
	}
	return ret;
}

int dump_lazy_serve(struct dump_ctx *ctx)
{
	uint64_t t0 = mono_us();
	int ret;

	ret = lazy_store_fill(ctx);
	if (!ret)
		ret = ps_server_setup(&ctx->srv, ctx->lazy_store, true);
	if (ret)
		return ret;

	pr_info("tree of task %d (%zu task(s)) frozen for %llu us, images written: serving "
		"%llu lazy pages on %s%s", ctx->root->pid, ctx->nr_tasks,
		(unsigned long long)(t0 - ctx->st.t_frozen),
		(unsigned long long)ctx->st.pages_lazy, ctx->srv.name,
		ctx->srv.tls ? " over TLS" : "");
	evloop_signal_ready(ctx->o->status_fd);
	ret = ps_server_run(&ctx->srv);
	if (ret == -EINTR || ret == -ECONNABORTED) {
		ctx->lazy_failed = true;
		return ret;
	}
	if (!ret)
		pr_info("the destination took its pages in %llu us: %llu GETs, %llu pages",
			(unsigned long long)(mono_us() - t0),
			(unsigned long long)ctx->srv.nr_gets, (unsigned long long)ctx->srv.nr_pages);
	return ret;
}

enum task_release_mode dump_lazy_failed_mode(const struct dump_ctx *ctx)
{
	if (!ctx->srv.nr_accepted)
		return ctx->o->leave_stopped ? RELEASE_STOP : RELEASE_RUN;
	return ctx->o->leave_running ? RELEASE_RUN : RELEASE_STOP;
}

/* The one line of a failed transfer: what happened, where the tree is. */
void dump_lazy_report(struct dump_ctx *ctx, enum task_release_mode mode)
{
	const struct ps_server *s = &ctx->srv;
	const struct dump_task *t = ctx->root;
	char served[128], who[128], fate[300];
	uint64_t gets, pages;
	size_t others = ctx->nr_tasks - 1;

	ps_server_served(s, &gets, &pages);
	snprintf(served, sizeof(served), "%llu of %llu lazy pages served in %llu GETs",
		 (unsigned long long)pages, (unsigned long long)ctx->st.pages_lazy,
		 (unsigned long long)gets);
	if (t->in_pidns)
		snprintf(who, sizeof(who), "task %d (pid %d in its pid namespace)", t->pid, t->vpid);
	else
		snprintf(who, sizeof(who), "task %d", t->pid);
	if (others)
		snprintf(who + strlen(who), sizeof(who) - strlen(who), " with the %zu other "
			 "task(s) of its tree", others);

	if (t->exited)
		snprintf(fate, sizeof(fate), "%s is gone", who);
	else if (mode == RELEASE_RUN)
		snprintf(fate, sizeof(fate), "%s resumed", who);
	else if (s->nr_accepted && others)
		snprintf(fate, sizeof(fate), "%s left stopped, since its copy may have run: "
			 "resume each (kill -CONT) once the copy is gone, or kill them", who);
	else if (s->nr_accepted)
		snprintf(fate, sizeof(fate), "%s left stopped, since its copy may have run: "
			 "resume it (kill -CONT %d) once the copy is gone, or kill it", who, t->pid);
	else
		snprintf(fate, sizeof(fate), "%s left stopped", who);
	if (s->stop_signal)
		pr_err("stopped by signal %d (%s) while serving lazy pages on %s (%s); %s%s%s",
		       s->stop_signal, strsignal(s->stop_signal), s->name, served, fate,
		       ctx->lost ? "; " : "", ctx->lost ? ctx->lost : "");
	else
		pr_err("lazy pages: the destination %s (%s); %s%s%s", s->why, served, fate,
		       ctx->lost ? "; " : "", ctx->lost ? ctx->lost : "");
}

void dump_lazy_fini(struct dump_ctx *ctx)
{
	ps_server_fini(&ctx->srv);
	ps_store_free(ctx->lazy_store);
	ctx->lazy_store = NULL;
}
