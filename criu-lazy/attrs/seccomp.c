/*
 * Seccomp, per thread: strict mode, or a chain of BPF filters.
 *
 * Dump: the mode from /proc/TID/status; each filter of the chain with
 * PTRACE_SECCOMP_GET_FILTER (index 0 is the oldest, the first installed)
 * and its flags with
 * PTRACE_SECCOMP_GET_METADATA.  As CRIU, every filter of the tree goes
 * once into seccomp.img (seccomp_entry.seccomp_filters), each naming the
 * filter installed before it (prev); a thread's core names its newest
 * (thread_core.seccomp_filter).  A filter is the same entry for two
 * threads when it, its flags and everything before it are the same: so
 * threads that share filters (TSYNC, or inherited over clone/fork) share
 * entries, and a chain that grew from an inherited one shares its start.
 * The threads were seized with PTRACE_O_SUSPEND_SECCOMP (dump/threads.c),
 * so what the dump runs inside them is not filtered.
 *
 * Restore: the blob installs every thread's chain, oldest first, before
 * its creds (pie/seccomp.c); when every thread of a process has the same
 * chain, the leader installs it once with SECCOMP_FILTER_FLAG_TSYNC.
 * The restore process keeps the threads under PTRACE_O_SUSPEND_SECCOMP
 * until it lets them go (restore/threads.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ptrace.h>

#define LOG_PREFIX ""
#include "attrs/task-attr.h"
#include "common/array.h"
#include "common/log.h"
#include "dump/dump.h"
#include "images/image.h"
#include "restore/restore.h"
#include "restore/images.h"

#include "seccomp.pb-c.h"

#define SC_MODE_STRICT		1
#define SC_MODE_FILTER		2
#define SC_MAX_INSNS		4096	/* BPF_MAXINSNS */
#define SC_MAX_CHAIN		4096	/* far more than the kernel's path limit allows */

struct dump_seccomp {
	SeccompFilter *v;
	size_t nr, cap;
};

/* The entry for (@insns, @flags) installed after entry @prev (-1: none). */
static int filter_find_or_add(struct dump_ctx *ctx, const void *insns, size_t len,
			      uint32_t flags, long prev)
{
	struct dump_seccomp *sc = ctx->seccomp;
	SeccompFilter *f;

	if (!sc) {
		sc = ctx->seccomp = calloc(1, sizeof(*sc));
		if (!sc)
			return -ENOMEM;
	}
	for (size_t i = 0; i < sc->nr; i++) {
		f = &sc->v[i];
		if (f->filter.len == len && !memcmp(f->filter.data, insns, len) &&
		    f->flags == flags && (prev < 0 ? !f->has_prev : f->has_prev && f->prev == prev))
			return (int)i;
	}
	if (ARRAY_GROW(sc->v, sc->cap, sc->nr + 1, 8))
		return -ENOMEM;
	f = &sc->v[sc->nr];
	seccomp_filter__init(f);
	f->filter.data = malloc(len);
	if (!f->filter.data)
		return -ENOMEM;
	memcpy(f->filter.data, insns, len);
	f->filter.len = len;
	f->has_flags = flags != 0;
	f->flags = flags;
	f->has_prev = prev >= 0;
	f->prev = prev >= 0 ? (uint32_t)prev : 0;
	return (int)sc->nr++;
}

/*
 * A filter that hands syscalls to a user-space listener (SECCOMP_RET_USER_
 * NOTIF) cannot come back: its listener fd is bound to the filter object,
 * and the restored filter would answer ENOSYS instead.
 */
static bool returns_user_notif(const struct sock_filter *f, long len)
{
	for (long i = 0; i < len; i++)
		if (f[i].code == (BPF_RET | BPF_K) &&
		    (f[i].k & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_USER_NOTIF)
			return true;
	return false;
}

/* "task P" or "thread T of task P": @t is the task or a view of one of its
 * threads (dump/threads.c), whose threads[0] is the leader. */
static const char *who(const struct dump_task *t, char *buf, size_t size)
{
	pid_t pid = t->threads ? t->threads[0].tid : t->pid;

	if (pid == t->pid)
		snprintf(buf, size, "task %d", pid);
	else
		snprintf(buf, size, "thread %d of task %d", t->pid, pid);
	return buf;
}

/* The chain of thread @t, oldest first in @buf[] (as the kernel counts
 * filter_off), then into the table. */
static int dump_chain(struct dump_ctx *ctx, struct dump_task *t, uint32_t *newest)
{
	struct sock_filter *buf[SC_MAX_CHAIN];
	long lens[SC_MAX_CHAIN];
	uint32_t flags[SC_MAX_CHAIN];
	long prev = -1;
	char name[64];
	size_t n = 0;
	int ret = 0;

	for (;;) {
		struct __ptrace_seccomp_metadata md = { .filter_off = n };
		long len;

		if (n == SC_MAX_CHAIN) {
			pr_err("task %d: more than %d seccomp filters", t->pid, SC_MAX_CHAIN);
			ret = -E2BIG;
			break;
		}
		len = ptrace(PTRACE_SECCOMP_GET_FILTER, t->pid, (void *)n, NULL);
		if (len < 0 && errno == ENOENT && n > 0)
			break;
		if (len <= 0 || len > SC_MAX_INSNS) {
			ret = len < 0 ? -errno : -EINVAL;
			if (len < 0)
				pr_perror("task %d: cannot read its seccomp filter %zu "
					  "(PTRACE_SECCOMP_GET_FILTER)", t->pid, n);
			else
				pr_err("task %d: its seccomp filter %zu has %ld instructions",
				       t->pid, n, len);
			break;
		}
		buf[n] = malloc(len * sizeof(struct sock_filter));
		if (!buf[n]) {
			ret = -ENOMEM;
			break;
		}
		lens[n] = len;
		if (ptrace(PTRACE_SECCOMP_GET_FILTER, t->pid, (void *)n, buf[n]) != len) {
			pr_perror("task %d: cannot read its seccomp filter %zu", t->pid, n);
			ret = -EIO;
			n++;
			break;
		}
		if (ptrace(PTRACE_SECCOMP_GET_METADATA, t->pid, (void *)sizeof(md), &md) < 0) {
			pr_perror("task %d: cannot read the flags of its seccomp filter %zu "
				  "(PTRACE_SECCOMP_GET_METADATA)", t->pid, n);
			ret = -errno;
			n++;
			break;
		}
		flags[n++] = (uint32_t)md.flags;
		if (returns_user_notif(buf[n - 1], len)) {
			pr_err("%s: its seccomp filter %zu sends syscalls to a user-space listener "
			       "(SECCOMP_RET_USER_NOTIF), which cannot be restored",
			       who(t, name, sizeof(name)), n - 1);
			ret = -EOPNOTSUPP;
			break;
		}
	}
	for (size_t i = 0; !ret && i < n; i++) {
		int id = filter_find_or_add(ctx, buf[i], lens[i] * sizeof(struct sock_filter),
					    flags[i], prev);

		if (id < 0)
			ret = id;
		prev = id;
	}
	for (size_t i = 0; i < n; i++)
		free(buf[i]);
	if (!ret)
		*newest = (uint32_t)prev;
	return ret;
}

static int dump_seccomp(struct dump_ctx *ctx, struct dump_task *t)
{
	ThreadCoreEntry *th = &t->core->thread;
	char status[16384];
	const char *v;
	int ret, mode;

	ret = dump_proc_read(t, "status", status, sizeof(status));
	if (ret < 0)
		return ret;
	v = proc_status_field(status, "Seccomp");
	mode = v ? atoi(v) : 0;
	th->has_seccomp_mode = true;
	th->seccomp_mode = mode;
	if (mode == SC_MODE_STRICT)
		pr_info("task %d: seccomp strict mode", t->pid);
	if (mode != SC_MODE_FILTER)
		return 0;
	ret = dump_chain(ctx, t, &th->seccomp_filter);
	if (ret)
		return ret;
	th->has_seccomp_filter = true;
	pr_info("task %d: seccomp filters, newest is entry %u", t->pid, th->seccomp_filter);
	return 0;
}

int dump_seccomp_write(struct dump_ctx *ctx)
{
	SeccompEntry se = SECCOMP_ENTRY__INIT;
	struct dump_seccomp *sc = ctx->seccomp;
	SeccompFilter **p;
	int ret;

	if (!sc || !sc->nr)
		return 0;	/* as CRIU: no image without filters */
	p = calloc(sc->nr, sizeof(*p));
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < sc->nr; i++)
		p[i] = &sc->v[i];
	se.n_seccomp_filters = sc->nr;
	se.seccomp_filters = p;
	ret = dump_img_write_one(ctx, IMG_SECCOMP, 0, &se.base);
	free(p);
	return ret;
}

void dump_seccomp_free(struct dump_ctx *ctx)
{
	struct dump_seccomp *sc = ctx->seccomp;

	if (!sc)
		return;
	for (size_t i = 0; i < sc->nr; i++)
		free(sc->v[i].filter.data);
	free(sc->v);
	free(sc);
	ctx->seccomp = NULL;
}

/* Restore side. */

/* The thread's mode; images of old CRIUs have it in task_core only. */
static int thread_mode(const struct rst_images *ri, const CoreEntry *core, uint32_t *filter)
{
	const ThreadCoreEntry *th = core->thread_core;

	if (th->has_seccomp_mode) {
		*filter = th->seccomp_filter;
		return th->has_seccomp_filter || th->seccomp_mode != SC_MODE_FILTER ?
		       (int)th->seccomp_mode : -1;
	}
	if (core == ri->core && core->tc && core->tc->has_old_seccomp_mode) {
		*filter = core->tc->old_seccomp_filter;
		return core->tc->has_old_seccomp_filter ||
		       core->tc->old_seccomp_mode != SC_MODE_FILTER ?
		       (int)core->tc->old_seccomp_mode : -1;
	}
	return 0;
}

/* Every thread has the same chain (and there are several). */
static bool chains_shared(const struct rst_images *ri)
{
	uint32_t first, f;

	if (ri->nr_threads < 2 || thread_mode(ri, ri->cores[0], &first) != SC_MODE_FILTER)
		return false;
	for (size_t i = 1; i < ri->nr_threads; i++)
		if (thread_mode(ri, ri->cores[i], &f) != SC_MODE_FILTER || f != first)
			return false;
	return true;
}

/* The chain ending at @newest, oldest first, into @out (SC_MAX_CHAIN). */
static size_t chain_of(const SeccompEntry *se, uint32_t newest, uint32_t *out)
{
	uint32_t rev[SC_MAX_CHAIN];
	size_t n = 0;

	for (uint32_t id = newest;; id = se->seccomp_filters[id]->prev) {
		rev[n++] = id;
		if (!se->seccomp_filters[id]->has_prev)
			break;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = rev[n - 1 - i];
	return n;
}

/* Load seccomp.img for a process with filters, and check every thread's
 * chain before any task exists. */
int rst_seccomp_load(struct rst_images *ri)
{
	SeccompEntry *se;
	bool any = false;
	int ret;

	for (size_t i = 0; i < ri->nr_threads; i++) {
		uint32_t f;
		int mode = thread_mode(ri, ri->cores[i], &f);

		if (mode < 0 || mode > SC_MODE_FILTER) {
			pr_err("core-%d.img: seccomp mode %d%s", ri->tids[i], mode,
			       mode < 0 ? " (filters, but none named)" : " (unknown)");
			return -EINVAL;
		}
		any |= mode == SC_MODE_FILTER;
	}
	if (!any)
		return 0;
	ret = img_read_one(ri->dirfd, IMG_SECCOMP, 0, &seccomp_entry__descriptor,
			   (ProtobufCMessage **)&se);
	if (ret == -ENOENT)
		pr_err("seccomp.img: missing, but task %d runs under seccomp filters", ri->pid);
	if (ret)
		return ret;
	ri->seccomp = se;
	for (size_t i = 0; i < se->n_seccomp_filters; i++) {
		const SeccompFilter *sf = se->seccomp_filters[i];
		size_t len = sf->filter.len;

		if (!len || len % sizeof(struct sock_filter) ||
		    len / sizeof(struct sock_filter) > SC_MAX_INSNS) {
			pr_err("seccomp.img: filter %zu is %zu bytes (1 to %d instructions of 8 bytes)",
			       i, len, SC_MAX_INSNS);
			return -EINVAL;
		}
		if (sf->has_prev && sf->prev >= se->n_seccomp_filters) {
			pr_err("seccomp.img: filter %zu follows filter %u, past the last (%zu)", i,
			       sf->prev, se->n_seccomp_filters - 1);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < ri->nr_threads; i++) {
		uint32_t f;
		size_t n = 0;

		if (thread_mode(ri, ri->cores[i], &f) != SC_MODE_FILTER)
			continue;
		if (f >= se->n_seccomp_filters) {
			pr_err("core-%d.img: seccomp filter %u, but seccomp.img has %zu", ri->tids[i],
			       f, se->n_seccomp_filters);
			return -EINVAL;
		}
		for (uint32_t id = f;; id = se->seccomp_filters[id]->prev) {
			if (++n > SC_MAX_CHAIN || n > se->n_seccomp_filters) {
				pr_err("seccomp.img: the chain of filters from %u (thread %d) loops", f,
				       ri->tids[i]);
				return -EINVAL;
			}
			if (!se->seccomp_filters[id]->has_prev)
				break;
		}
	}
	return 0;
}

static size_t seccomp_args_size(const struct rst_images *ri, const CoreEntry *core)
{
	uint32_t chain[SC_MAX_CHAIN], f;
	size_t n, size = 0;

	if (thread_mode(ri, core, &f) != SC_MODE_FILTER || !ri->seccomp)
		return 0;
	n = chain_of(ri->seccomp, f, chain);
	for (size_t i = 0; i < n; i++)
		size += sizeof(struct rst_seccomp_filter) +
			ATTR_ALIGN(ri->seccomp->seccomp_filters[chain[i]]->filter.len);
	return size;
}

static int restore_seccomp(struct attr_rst *r)
{
	struct rst_seccomp *sc = &r->thread->seccomp;
	uint32_t chain[SC_MAX_CHAIN], f;
	struct rst_seccomp_filter *out;
	int mode = thread_mode(r->ri, r->core, &f);
	size_t n;

	sc->mode = mode;
	if (!mode)
		return 0;
	r->args->trace_threads = 1;
	if (mode != SC_MODE_FILTER)
		return 0;
	sc->tsync = chains_shared(r->ri);
	if (sc->tsync && r->tid != r->pid)
		return 0;	/* the leader's TSYNC gives it the chain */
	n = chain_of(r->ri->seccomp, f, chain);
	out = attr_args_alloc(r, n * sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const SeccompFilter *sf = r->ri->seccomp->seccomp_filters[chain[i]];
		void *insns = attr_args_alloc(r, sf->filter.len);

		memcpy(insns, sf->filter.data, sf->filter.len);
		memset(&out[i], 0, sizeof(out[i]));
		out[i].len = sf->filter.len / sizeof(struct sock_filter);
		out[i].insns = (uint64_t)(uintptr_t)insns;
		out[i].flags = sf->has_flags ? sf->flags : 0;
	}
	sc->nr_filters = n;
	sc->filters = (uint64_t)(uintptr_t)out;
	return 0;
}

const struct task_attr attr_seccomp = {
	.name = "seccomp",
	.scope = ATTR_THREAD,
	.dump_stage = ATTR_DUMP_FROZEN,
	.dump = dump_seccomp,
	.args_size = seccomp_args_size,
	.restore = { [ATTR_RST_BLOB] = restore_seccomp },
};
