/*
 * What comes out of a task's userfaultfd.
 *
 * Every queued message is read before any fault is served: while an event
 * (REMOVE, REMAP, UNMAP, FORK) is pending the copy ioctls fail with EAGAIN,
 * and a fault read before a REMAP may name an address that has moved.  So a
 * batch is: read all, apply the events in order, then serve the faults.  A
 * fault whose copy still gets EAGAIN is deferred and served after the next
 * batch of events.
 */
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/array.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "lazy/lazy-daemon.h"
#include "lazy/page-source.h"
#include "lazy/prefetch.h"
#include "lazy/uffd.h"

#define MSG_BATCH 64

int lazy_defer_fault(struct lazy_task *t, uint64_t addr)
{
	if (ARRAY_GROW(t->deferred, t->cap_deferred, t->nr_deferred + 1, 16))
		return -ENOMEM;
	t->deferred[t->nr_deferred++] = addr;
	return 0;
}

/*
 * Pages a fault brings: its aligned window, or with a working set (t->pf)
 * the page alone unless it closely follows the task's last fault (a
 * reader going forward).  A window's other pages reach the task without a
 * fault, so a record never has those the task reads next: after three
 * recordings it still lacked 1,100 of a function's 26,214 scattered pages,
 * each a fault (a round trip to a page server) on every restore.  Without
 * the window a restore with a record faults on each page the record lacks
 * and so records it: the next record is whole.
 */
static uint64_t fault_window(struct lazy_task *t, uint64_t addr)
{
	bool follows = addr > t->last_fault &&
		       addr - t->last_fault <= LAZY_FAULT_WINDOW_PAGES * LAZY_PAGE_SIZE;

	t->last_fault = addr;
	return t->pf && !follows ? 1 : LAZY_FAULT_WINDOW_PAGES;
}

static int serve_fault(struct lazy_daemon *d, struct lazy_task *t, uint64_t addr, uint64_t t_ns)
{
	struct lazy_span span;
	uint64_t done, img;
	int ret;

	addr &= ~(LAZY_PAGE_SIZE - 1);
	if (t->gone)
		return 0;
	ret = lazy_shmem_fault(d, t, addr, t_ns);
	if (ret <= 0)
		return ret;
	/*
	 * A request for this page is out (a neighbour's fault-around, or the
	 * background): its copy will wake the thread.  The task touched it
	 * before it arrived, so it is in the working set all the same.
	 */
	ret = lazy_wait_inflight(t, addr, &img);
	if (!ret && ws_touch(&d->ws, t->pid, img, t_ns))
		lazy_prefetch_fault(d, t, img, lazy_inflight_is_prefetch(t, addr));
	if (ret <= 0)
		return ret;

	if (lazy_model_take_fault(&t->model, addr, fault_window(t, addr), &span)) {
		img = span.img_start + (addr - span.start);
		if (ws_touch(&d->ws, t->pid, img, t_ns))
			lazy_prefetch_fault(d, t, img, false);
		t->xfer_pages = LAZY_XFER_MIN_PAGES;	/* the task is busy: small chunks */
		ret = lazy_request(d, t, &span, true, t_ns);
		if (ret == -EAGAIN)
			return lazy_defer_fault(t, addr);
		return ret;
	}

	/* outside the model: never dumped, or discarded since */
	ret = uffd_fill(t->uffd, UFFD_FILL_ZERO, addr, NULL, LAZY_PAGE_SIZE, &done);
	switch (ret) {
	case UFFD_DONE:
		LAZY_COUNT(d, t, pages_zero, 1);
		return 0;
	case UFFD_RETRY:
		return lazy_defer_fault(t, addr);
	case UFFD_GONE_RANGE:
		/* the VMA went away: let the thread retry and see what is there now */
		return uffd_wake(t->uffd, addr, LAZY_PAGE_SIZE) < 0 ? -EIO : 0;
	case UFFD_GONE_TASK:
		lazy_task_close(d, t, "exited");
		return 0;
	default:
		return ret;
	}
}

int lazy_retry_deferred(struct lazy_daemon *d, struct lazy_task *t)
{
	size_t n = t->nr_deferred;
	uint64_t *addrs = t->deferred;
	int ret = 0;

	if (!n)
		return 0;
	t->deferred = NULL;
	t->nr_deferred = t->cap_deferred = 0;
	for (size_t i = 0; i < n && !ret; i++)
		ret = serve_fault(d, t, addrs[i], mono_ns());
	free(addrs);
	return ret;
}

static int on_fork(struct lazy_daemon *d, struct lazy_task *parent, int child_uffd)
{
	struct lazy_task *child;
	struct epoll_event ev = { .events = EPOLLIN };
	int ret;

	/* the read put child_uffd in our fd table; the guardian has no copy yet */
	lazy_test_stop("CRIU_LAZY_TEST_STOP_AFTER_FORK_READ", ++d->forks_read);
	child = lazy_task_new(d, parent->pid, parent->host_pid, child_uffd, parent->img);
	if (!child) {
		close(child_uffd);
		return -ENOMEM;
	}
	child->forked = true;
	ret = lazy_model_clone(&child->model, &parent->model) ?:
	      lazy_shm_clone(&child->shm, &parent->shm);
	if (ret)
		return ret;
	/* what the parent still waits for, the child must get too */
	for (size_t i = 0; i < parent->nr_inflight && !ret; i++)
		ret = lazy_model_put_back(&child->model, &parent->inflight[i].span);
	if (ret)
		return ret;
	child->nr_lazy_pages = child->model.nr_pending;
	LAZY_COUNT(d, child, pages_inherited, child->model.nr_pending);
	lazy_fork_begin(d, parent, child);	/* its pid, to look at its threads */

	ev.data.ptr = child;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, child_uffd, &ev)) {
		pr_perror("watch the uffd of a child of task %d", parent->pid);
		return -errno;
	}
	pr_info("task %d forked: new uffd %d, %llu pages still lazy", parent->pid, child_uffd,
		(unsigned long long)child->model.nr_pending);
	return 0;
}

/* munmap, or a shrinking mremap: nothing of [start, end) is wanted any more */
static int on_unmap(struct lazy_daemon *d, struct lazy_task *t, uint64_t start, uint64_t end)
{
	uint64_t dropped = t->model.nr_pending;
	int ret;

	lazy_model_drop(&t->model, start, end);
	dropped -= t->model.nr_pending;
	ret = lazy_inflight_drop(t, start, end, &dropped) ?: lazy_shm_cut(&t->shm, start, end);
	LAZY_COUNT(d, t, pages_dropped_event, dropped);
	/* a thread waiting there must retry its fault and see what is there now */
	if (!ret && uffd_wake(t->uffd, start, end - start) < 0)
		ret = -EIO;
	return ret;
}

/*
 * madvise(MADV_DONTNEED): the range must read zeros from now on, so no
 * fault there may reach us again (we would deliver the dumped data).
 */
static int on_remove(struct lazy_daemon *d, struct lazy_task *t, uint64_t start, uint64_t end)
{
	/* shared memory keeps its data (DONTNEED: the object gets it before we
	 * let go) or loses it (REMOVE: its pending pages are dropped) */
	int ret = lazy_shmem_remove(d, t, start, end);

	if (ret)
		return ret;
	ret = uffd_unregister(t->uffd, start, end - start);

	if (ret == UFFD_GONE_TASK) {
		lazy_task_close(d, t, "exited");
		return 0;
	}
	if (ret < 0)
		return ret;
	return on_unmap(d, t, start, end);
}

/*
 * mremap moved [from, from+len) to [to, to+len).  Whatever was at the
 * destination is gone (an UNMAP event said so first, normally).  A thread
 * that waited on a page of the old range is not woken by that page's copy
 * at its new address: wake it, its access is retried where it is now.
 */
static int on_remap(struct lazy_daemon *d, struct lazy_task *t, uint64_t from, uint64_t to,
		    uint64_t len)
{
	uint64_t dropped = 0;
	int ret = 0;

	len = (len + LAZY_PAGE_SIZE - 1) & ~(LAZY_PAGE_SIZE - 1);
	if (to + len <= from || from + len <= to)
		ret = lazy_inflight_drop(t, to, to + len, &dropped);
	ret = ret ?: lazy_inflight_remap(t, from, to, len);
	ret = ret ?: lazy_model_remap(&t->model, from, to, len, &dropped);
	ret = ret ?: lazy_shm_remap(&t->shm, from, to, len);
	LAZY_COUNT(d, t, pages_dropped_event, dropped);
	if (!ret && uffd_wake(t->uffd, from, len) < 0)
		ret = -EIO;
	return ret;
}

static int apply_event(struct lazy_daemon *d, struct lazy_task *t, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_FORK:
		return on_fork(d, t, m->arg.fork.ufd);
	case UFFD_EVENT_REMAP:
		pr_debug("task %d: remap 0x%llx -> 0x%llx (%llu bytes)", t->pid,
			 (unsigned long long)m->arg.remap.from, (unsigned long long)m->arg.remap.to,
			 (unsigned long long)m->arg.remap.len);
		return on_remap(d, t, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
	case UFFD_EVENT_REMOVE:
		pr_debug("task %d: remove 0x%llx-0x%llx", t->pid,
			 (unsigned long long)m->arg.remove.start, (unsigned long long)m->arg.remove.end);
		return on_remove(d, t, m->arg.remove.start, m->arg.remove.end);
	case UFFD_EVENT_UNMAP:
		pr_debug("task %d: unmap 0x%llx-0x%llx", t->pid,
			 (unsigned long long)m->arg.remove.start, (unsigned long long)m->arg.remove.end);
		return on_unmap(d, t, m->arg.remove.start, m->arg.remove.end);
	default:
		pr_err("task %d: unexpected userfaultfd event 0x%x", t->pid, m->event);
		return -EINVAL;
	}
}

/*
 * Read every queued message (bounded: the rest comes next round), apply the
 * events in order and collect the faults' addresses.
 */
static int read_batch(struct lazy_daemon *d, struct lazy_task *t, uint64_t *faults,
		      size_t max_faults, size_t *nr_faults)
{
	struct uffd_msg msgs[MSG_BATCH];
	int n, max, ret = 0;

	*nr_faults = 0;
	do {
		/*
		 * MADV_REMOVE or MADV_DONTNEED: the threads say, looked at while
		 * what is read is queued, and one message a read (a longer read
		 * could take an event queued after the look).
		 * lazy-shmem-removers.c.
		 */
		max = MSG_BATCH;
		if (lazy_shmem_wants_look(t)) {
			if (!uffd_has_msgs(t->uffd))
				break;
			lazy_shmem_note_removers(d, t);
			max = 1;
		} else {
			t->nr_removers = 0;
			t->removers_known = false;
			lazy_fork_look_start(t);	/* no look: no forker known */
		}
		n = uffd_read_msgs(t->uffd, msgs, max);
		if (n < 0)
			return n;
		for (int i = 0; i < n && !ret; i++) {
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
				faults[(*nr_faults)++] = msgs[i].arg.pagefault.address;
				pr_debug("task %d: thread %u faults at 0x%llx", t->pid,
					 msgs[i].arg.pagefault.feat.ptid,
					 (unsigned long long)msgs[i].arg.pagefault.address);
			} else {
				ret = apply_event(d, t, &msgs[i]);
			}
		}
		if (ret)
			return ret;
	} while (n == max && *nr_faults + MSG_BATCH <= max_faults && !t->gone);
	return 0;
}

int lazy_handle_uffd(struct lazy_daemon *d, struct lazy_task *t)
{
	uint64_t faults[MSG_BATCH * 4];
	size_t nr_faults;
	uint64_t t_ns;
	int ret;

	ret = read_batch(d, t, faults, sizeof(faults) / sizeof(faults[0]), &nr_faults);
	if (ret)
		return ret;
	t_ns = mono_ns();
	LAZY_COUNT(d, t, faults, nr_faults);
	if (t->pf && !t->pf->installed)
		LAZY_COUNT(d, t, faults_installing, nr_faults);
	else if (t->pf && nr_faults)
		t->pf->faulted = true;
	if (nr_faults)
		d->last_fault_ns = t_ns;
	ret = lazy_retry_deferred(d, t);
	for (size_t i = 0; i < nr_faults && !ret; i++)
		ret = serve_fault(d, t, faults[i], t_ns);
	return ret;
}

int lazy_read_events(struct lazy_daemon *d, struct lazy_task *t)
{
	uint64_t faults[MSG_BATCH * 4];
	size_t nr_faults;
	int ret;

	ret = read_batch(d, t, faults, sizeof(faults) / sizeof(faults[0]), &nr_faults);
	for (size_t i = 0; i < nr_faults && !ret; i++)
		ret = lazy_defer_fault(t, faults[i]);
	return ret;
}
