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
 * system call and its arguments (number, start, length, advice).  So
 * before each read of the events of a task that maps shared memory still
 * to come, its threads in madvise(MADV_REMOVE) are noted, and a REMOVE
 * event inside one of their ranges is a hole: its pending pages are
 * dropped, not filled (lazy-shmem.c).
 *
 * Not covered (the old order, fill first): a thread that enters madvise
 * between this look and the read (microseconds), more than
 * LAZY_MAX_REMOVERS at once, and a process forked after the restore (the
 * daemon does not know its pid).  Documentation/lazy-pages.md.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define LOG_PREFIX "shmem: "
#include "common/log.h"
#include "common/proc-task.h"
#include "lazy/lazy-daemon.h"

/* The madvise(MADV_REMOVE) thread tid is blocked in, or false. */
static bool thread_punches(pid_t pid, pid_t tid, uint64_t *start, uint64_t *len)
{
	unsigned long long a0, a1, a2;
	char buf[256];
	long nr;

	if (proc_task_read(pid, tid, "syscall", buf, sizeof(buf)) <= 0)
		return false;
	/* "running", or "NR 0xA0 0xA1 0xA2 ..." */
	if (sscanf(buf, "%ld 0x%llx 0x%llx 0x%llx", &nr, &a0, &a1, &a2) != 4 ||
	    nr != SYS_madvise || a2 != MADV_REMOVE)
		return false;
	*start = a0;
	*len = a1;
	return true;
}

/* Note thread @tid of @arg (a struct lazy_task) if it punches; 1 when full. */
static int note_remover(pid_t tid, void *arg)
{
	struct lazy_task *t = arg;
	uint64_t start, len;

	if (!thread_punches(t->host_pid, tid, &start, &len))
		return 0;
	t->removers[t->nr_removers][0] = start;
	t->removers[t->nr_removers][1] = start + len;
	t->nr_removers++;
	pr_debug("task %d: thread %d punches 0x%" PRIx64 "-0x%" PRIx64 " (MADV_REMOVE)",
		 t->pid, tid, start, start + len);
	return t->nr_removers == LAZY_MAX_REMOVERS;
}

void lazy_shmem_note_removers(struct lazy_task *t)
{
	t->nr_removers = 0;
	if (t->forked || t->gone || !t->shm.nr || lazy_shmem_task_done(t))
		return;
	/* a task that exited meanwhile: its events say so */
	proc_each_thread(t->host_pid, note_remover, t);
}

bool lazy_shmem_is_punch(const struct lazy_task *t, uint64_t start, uint64_t end)
{
	for (unsigned int i = 0; i < t->nr_removers; i++)
		if (start >= t->removers[i][0] && end <= (t->removers[i][1] + 4095) / 4096 * 4096)
			return true;
	return false;
}
