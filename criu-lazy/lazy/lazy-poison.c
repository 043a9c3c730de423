/*
 * When pages can no longer arrive (the daemon is told to stop, its page
 * source died, or it failed), the tasks must not silently read zeros where
 * their data was: every page still lazy is poisoned, so touching it raises
 * SIGBUS.  Kernels without UFFDIO_POISON leave the pages to the kernel's
 * default once our uffd closes (zero-filled) -- logged loudly.
 *
 * A poison meets the same VMA boundaries as a copy (uffd_fill splits the
 * span), and the same events: while one is pending the ioctl fails with
 * EAGAIN, so the events are read and applied (a REMAP moves what is left to
 * poison) and the rest is poisoned where it is then.
 */
#include <errno.h>
#include <time.h>

#include "common/log.h"
#include "lazy/lazy-daemon.h"
#include "lazy/uffd.h"

struct poison_count {
	uint64_t poisoned;	/* will raise SIGBUS */
	uint64_t unreachable;	/* in no VMA of the task: nothing there to touch */
};

static void wait_a_little(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * A poison met a pending event (UFFD_RETRY): the task's events read and
 * applied, then a pause for the next one to be queued.  -EAGAIN after
 * UFFD_EVENT_WAIT_TRIES calls for one poison, or the read's error.
 */
int lazy_poison_await_events(struct lazy_daemon *d, struct lazy_task *t, int *tries)
{
	int ret;

	if (++*tries > UFFD_EVENT_WAIT_TRIES)
		return -EAGAIN;
	ret = lazy_read_events(d, t);
	if (ret < 0)
		return ret;
	wait_a_little();
	return 0;
}

static void put_back_from(struct lazy_task *t, const struct lazy_span *span, uint64_t pages)
{
	struct lazy_span rest = {
		.start = span->start + pages * LAZY_PAGE_SIZE,
		.img_start = span->img_start + pages * LAZY_PAGE_SIZE,
		.nr_pages = span->nr_pages - pages,
	};

	if (rest.nr_pages)
		lazy_model_put_back(&t->model, &rest);
}

static int poison_task(struct lazy_daemon *d, struct lazy_task *t, struct poison_count *c)
{
	struct lazy_span span;
	int tries = 0;

	/* nothing in flight will arrive: it is poisoned with the rest */
	for (size_t i = 0; i < t->nr_inflight; i++)
		lazy_model_put_back(&t->model, &t->inflight[i].span);
	t->nr_inflight = 0;

	while (!t->gone && lazy_model_take_next(&t->model, UINT64_MAX, &span)) {
		uint64_t done, pages;
		int ret = uffd_fill(t->uffd, UFFD_FILL_POISON, span.start, NULL,
				    span.nr_pages * LAZY_PAGE_SIZE, &done);

		pages = done / LAZY_PAGE_SIZE;
		c->poisoned += pages;
		switch (ret) {
		case UFFD_DONE:
			break;
		case UFFD_GONE_RANGE:
			c->unreachable++;
			put_back_from(t, &span, pages + 1);
			break;
		case UFFD_RETRY:
			put_back_from(t, &span, pages);
			ret = lazy_poison_await_events(d, t, &tries);
			if (ret < 0)
				return ret;
			break;
		case UFFD_GONE_TASK:
			return 0;
		default:
			return ret;
		}
	}
	return 0;
}

unsigned int lazy_poison_all(struct lazy_daemon *d)
{
	unsigned int nr = 0;

	/* a FORK event read on the way adds a task at the end: poisoned too */
	for (struct lazy_task *t = d->tasks; t; t = t->next) {
		struct poison_count c = { 0 };
		uint64_t pending = t->model.nr_pending;
		int ret = 0;

		for (size_t i = 0; i < t->nr_inflight; i++)
			pending += t->inflight[i].span.nr_pages;
		if (t->gone)
			continue;
		if (pending)
			ret = poison_task(d, t, &c);
		if (ret)
			pr_warn("task %d: %llu pages could not be poisoned and will read as zeros",
				t->pid, (unsigned long long)t->model.nr_pending);
		if (c.poisoned)
			pr_warn("task %d: %llu pages that can no longer arrive will raise SIGBUS",
				t->pid, (unsigned long long)c.poisoned);
		if (c.unreachable)
			pr_info("task %d: %llu lazy pages are in no VMA any more", t->pid,
				(unsigned long long)c.unreachable);
		if (lazy_shmem_poison_task(d, t) + c.poisoned)
			nr++;
	}
	return nr;
}
