/*
 * When pages can no longer arrive (the daemon is told to stop, its page
 * source died, or it failed), the tasks must not silently read zeros where
 * their data was: every page still lazy is poisoned, so touching it raises
 * SIGBUS.  Kernels without UFFDIO_POISON leave the pages to the kernel's
 * default once our uffd closes (zero-filled) -- logged loudly.
 */
#include "common/log.h"
#include "lazy/lazy-daemon.h"
#include "lazy/uffd.h"

static int poison_task(struct lazy_task *t)
{
	struct lazy_span span;
	int ret;

	/* take every pending run and poison it */
	while (lazy_model_take_next(&t->model, UINT64_MAX, &span)) {
		ret = uffd_poison(t->uffd, span.start, span.nr_pages * LAZY_PAGE_SIZE);
		if (ret < 0)
			return ret;
		if (ret == UFFD_GONE_TASK)
			return 0;
	}
	for (size_t i = 0; i < t->nr_inflight; i++) {
		struct lazy_span *s = &t->inflight[i].span;

		ret = uffd_poison(t->uffd, s->start, s->nr_pages * LAZY_PAGE_SIZE);
		if (ret < 0)
			return ret;
	}
	t->nr_inflight = 0;
	return 0;
}

void lazy_poison_all(struct lazy_daemon *d)
{
	for (struct lazy_task *t = d->tasks; t; t = t->next) {
		uint64_t pending = t->model.nr_pending;

		if (t->gone || (!pending && !t->nr_inflight))
			continue;
		if (poison_task(t))
			pr_warn("task %d: %llu pages could not be poisoned and will read as zeros",
			       t->pid, (unsigned long long)pending);
		else
			pr_warn("task %d: %llu pages that can no longer arrive will raise SIGBUS",
			       t->pid, (unsigned long long)pending);
	}
}
