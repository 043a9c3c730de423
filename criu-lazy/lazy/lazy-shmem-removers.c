/*
 * MADV_DONTNEED or MADV_REMOVE?  Both send the same REMOVE event, and on
 * shared memory they differ: DONTNEED keeps the object's data, REMOVE
 * punches a hole in it.  The daemon must fill a DONTNEED range's pending
 * pages (the task reads the dumped data after it) and must not fill a
 * REMOVE range's (the task reads zeros).  The kernel lets the remover go
 * as soon as the daemon reads the event, and punches the hole only then:
 * filling after the read raced with the hole (the data won whenever the
 * hole came first).
 *
 * The event does not say which; the thread does, while it waits: a thread
 * whose REMOVE event is queued is blocked inside madvise(2) until the
 * event is read, and /proc/PID/task/TID/syscall shows a blocked thread's
 * system call and its arguments (number, start, length, advice).
 *
 * So the look must come while the event is queued, and the read must take
 * nothing queued after the look.  For a task mapping shared memory still
 * to come (lazy-events.c): the uffd is polled first (something is queued),
 * then its threads in madvise(DONTNEED, FREE or REMOVE) are noted, then ONE
 * message is read.  The kernel hands out queued faults before events and
 * the events oldest first, so an event read so was queued before the look
 * and its thread is among those noted.  Before, one read took up to 16
 * messages: a DONTNEED read first let its thread go on to a MADV_REMOVE
 * whose event the same read could take (its thread unseen), filled into the
 * hole (test_discard_while_lazy[lazy], once in a loaded full run).
 *
 * An event that the noted threads do not decide (none covers it, or some
 * that do keep and some punch, or a thread could not be looked at) makes
 * the daemon fail, when the range holds pages still to come: neither a
 * fill nor a drop would be known right.  A process forked after the restore
 * is looked at by its pid once that is known for sure (lazy-fork-pid.c);
 * until then, or if it cannot be, its events are undecided.  The same look
 * notes the threads in fork(2), for that.  Documentation/lazy-pages.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define LOG_PREFIX "shmem: "
#include "common/array.h"
#include "common/log.h"
#include "common/proc-task.h"
#include "lazy/lazy-daemon.h"

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED	24
#endif

enum { THREAD_OTHER, THREAD_DISCARDS, THREAD_UNKNOWN };

/*
 * Is thread tid of t in a madvise that sends REMOVE events?  *r its range.
 * One in fork(2) is noted for lazy-fork-pid.c.
 */
static int thread_discards(struct lazy_task *t, pid_t tid, struct lazy_remover *r)
{
	unsigned long long a0, a1, a2, a3, advice;
	char buf[256];
	ssize_t n = proc_task_read(t->proc_pid, tid, "syscall", buf, sizeof(buf));
	long nr;
	int got;

	if (n == -ENOENT || n == -ESRCH)
		return THREAD_OTHER;	/* exited: nothing of it can be queued */
	if (n <= 0)
		return THREAD_UNKNOWN;
	/* "running" (then it waits for no event of ours), or "NR 0xA0 0xA1 0xA2 ..." */
	got = sscanf(buf, "%ld 0x%llx 0x%llx 0x%llx 0x%llx", &nr, &a0, &a1, &a2, &a3);
	if (got >= 2)
		lazy_fork_look_thread(t, tid, nr, a0);
	if (got >= 4 && nr == SYS_madvise) {
		advice = a2;
		r->start = a0;
		r->end = (a0 + a1 + 4095) / 4096 * 4096;
	} else if (got == 5 && nr == SYS_process_madvise) {
		/* (pidfd, iovec, vlen, advice): on itself only (another process's
		 * memory takes no discarding advice); its ranges are in its
		 * memory: it covers every address */
		advice = a3;
		r->start = 0;
		r->end = UINT64_MAX;
	} else {
		return THREAD_OTHER;
	}
	if (advice != MADV_DONTNEED && advice != MADV_DONTNEED_LOCKED && advice != MADV_FREE &&
	    advice != MADV_REMOVE)
		return THREAD_OTHER;
	r->punch = advice == MADV_REMOVE;
	return THREAD_DISCARDS;
}

bool lazy_shmem_wants_look(const struct lazy_task *t)
{
	/* a fork whose pid is lost has nothing to look at */
	return !t->gone && t->fork_pid != FORK_PID_LOST && t->shm.nr && !lazy_shmem_task_done(t);
}

/* Note thread @tid of @arg (a struct lazy_task) if it discards. */
static int note_remover(pid_t tid, void *arg)
{
	struct lazy_task *t = arg;
	struct lazy_remover r;
	int how = thread_discards(t, tid, &r);

	if (how == THREAD_OTHER)
		return 0;
	if (how == THREAD_UNKNOWN ||
	    ARRAY_GROW(t->removers, t->cap_removers, t->nr_removers + 1, 8)) {
		t->removers_known = false;
		return 0;
	}
	t->removers[t->nr_removers++] = r;
	pr_debug("task %d: process %d's thread %d discards 0x%" PRIx64 "-0x%" PRIx64
		 " (MADV_%s)", t->pid, t->proc_pid, tid, r.start, r.end,
		 r.punch ? "REMOVE" : "DONTNEED/FREE");
	return 0;
}

void lazy_shmem_note_removers(struct lazy_daemon *d, struct lazy_task *t)
{
	t->nr_removers = 0;
	t->removers_known = false;
	lazy_fork_look_start(t);
	/* a fork's pid: its uffd has a message, so the child is there */
	if (t->forked)
		lazy_fork_find(d, t, true);
	if (!t->proc_pid)
		return;		/* a fork whose pid is not known: undecided */
	t->removers_known = true;
	/* a task that exited meanwhile: its events say so */
	if (proc_each_thread(t->proc_pid, note_remover, t) < 0)
		t->removers_known = false;
	lazy_fork_look_end(d, t);
}

enum lazy_discard lazy_shmem_discard_kind(const struct lazy_task *t, uint64_t start, uint64_t end)
{
	bool keep = false, punch = false;

	if (!t->removers_known)
		return LAZY_DISCARD_UNKNOWN;
	for (size_t i = 0; i < t->nr_removers; i++) {
		const struct lazy_remover *r = &t->removers[i];

		if (start < r->start || end > r->end)
			continue;
		if (r->punch)
			punch = true;
		else
			keep = true;
	}
	if (keep == punch)
		return LAZY_DISCARD_UNKNOWN;
	return punch ? LAZY_DISCARD_PUNCH : LAZY_DISCARD_KEEP;
}
