/*
 * The lazy pages of frozen tasks, read from their memory (see ps-store.h):
 * what `dump --lazy-pages` serves.
 *
 * The dump wrote no data for these pages; it recorded them as PE_LAZY runs
 * and keeps the tasks frozen under ptrace, so their memory is what it was
 * at dump time.  A lookup clamps a GET to the end of its run, as the images
 * store does; the data is read when the session has parsed what the client
 * sent, the replies of many GETs in one process_vm_readv (local and remote
 * iovecs side by side), straight into the reply buffers.  No pipes: a
 * pipe-based transfer would be bounded by fs.pipe-max-size.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "common/log.h"
#include "pageserver/ps-proto.h"
#include "pageserver/ps-store.h"

struct live_task {
	pid_t id;			/* in the images */
	pid_t real;			/* here */
	struct ps_run *runs;
	size_t nr_runs;
};

struct live_store {
	struct ps_store s;		/* first */
	struct live_task *tasks;
};

static const struct ps_store_ops live_ops;

static const struct live_task *find_task(const struct ps_store *store, pid_t id)
{
	const struct live_store *s = (const struct live_store *)store;

	for (size_t i = 0; i < s->s.nr_tasks; i++)
		if (s->tasks[i].id == id)
			return &s->tasks[i];
	return NULL;
}

static enum ps_lookup live_find(const struct ps_store *s, pid_t pid, uint64_t vaddr,
				uint64_t *nr_pages, const void **data)
{
	const struct live_task *t = find_task(s, pid);
	const struct ps_run *r;
	uint64_t left;

	if (!t)
		return PS_NO_TASK;
	r = ps_runs_find(t->runs, t->nr_runs, vaddr);
	if (!r)
		return PS_NOT_LAZY;
	left = (r->vaddr + r->nr_pages * PS_PAGE_SIZE - vaddr) / PS_PAGE_SIZE;
	if (*nr_pages > left)
		*nr_pages = left;
	*data = NULL;		/* read it with live_read() */
	return PS_FOUND;
}

/* One process_vm_readv for all of them, again for whatever a short read left. */
static int live_read(const struct ps_store *s, pid_t pid, const struct iovec *local,
		     const struct iovec *remote, int n, char *why, size_t why_len)
{
	const struct live_task *t = find_task(s, pid);
	size_t total = 0, done = 0;
	int i = 0;

	if (!t) {
		snprintf(why, why_len, "no task %d to read pages of", pid);
		return -ESRCH;
	}
	for (int k = 0; k < n; k++)
		total += local[k].iov_len;
	while (done < total) {
		struct iovec l[n], r[n];
		size_t skip = done;
		int cnt = 0;
		ssize_t got;

		/* the iovecs from byte `done` on */
		for (i = 0; i < n && skip >= local[i].iov_len; i++)
			skip -= local[i].iov_len;
		for (int k = i; k < n; k++, cnt++) {
			size_t off = k == i ? skip : 0;

			l[cnt] = (struct iovec){ (char *)local[k].iov_base + off, local[k].iov_len - off };
			r[cnt] = (struct iovec){ (char *)remote[k].iov_base + off, remote[k].iov_len - off };
		}
		got = process_vm_readv(t->real, l, cnt, r, cnt, 0);
		if (got <= 0) {
			int err = got < 0 ? errno : EFAULT;
			uint64_t at = (uintptr_t)r[0].iov_base;

			snprintf(why, why_len, "cannot read the page at 0x%llx of task %d "
				 "(pid %d here): %s", (unsigned long long)at, t->id, t->real,
				 strerror(err));
			return -err;
		}
		done += got;
	}
	return 0;
}

static void live_free(struct ps_store *store)
{
	struct live_store *s = (struct live_store *)store;

	for (size_t i = 0; i < s->s.nr_tasks; i++)
		free(s->tasks[i].runs);
	free(s->tasks);
	free(s);
}

static const struct ps_store_ops live_ops = {
	.find = live_find,
	.read = live_read,
	.free = live_free,
};

int ps_store_live_new(struct ps_store **out)
{
	struct live_store *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->s.ops = &live_ops;
	*out = &s->s;
	return 0;
}

int ps_store_live_add(struct ps_store *store, pid_t id, pid_t real, struct ps_run *runs,
		      size_t nr_runs)
{
	struct live_store *s = (struct live_store *)store;
	struct live_task *grown;
	uint64_t pages = 0;

	grown = realloc(s->tasks, (s->s.nr_tasks + 1) * sizeof(*grown));
	if (!grown) {
		free(runs);
		return -ENOMEM;
	}
	s->tasks = grown;
	s->tasks[s->s.nr_tasks++] = (struct live_task){ id, real, runs, nr_runs };
	for (size_t i = 0; i < nr_runs; i++)
		pages += runs[i].nr_pages;
	pr_info("task %d (pid %d here): %llu lazy pages in %zu runs, served from its memory",
		id, real, (unsigned long long)pages, nr_runs);
	return 0;
}
