/*
 * The pid of a process forked after the restore.  Its uffd comes with the
 * FORK event, its pid with nothing: the kernel sends the event from inside
 * the parent's fork(2), while it copies the memory, before the child has a
 * pid (dup_mmap() runs before alloc_pid() in copy_process()), and keeps the
 * forking thread there until the daemon reads the event.  The look at the
 * threads of a process mapping shared memory still to come (one before
 * each read of its uffd, lazy-shmem-removers.c) needs that pid: only the
 * remover's own advice tells MADV_REMOVE (a hole) from MADV_DONTNEED (data
 * kept) on shared memory.
 *
 * So the look also notes the parent's threads in fork(2): clone(2) without
 * CLONE_VM (with it no memory is copied: no FORK event), fork(2).  When
 * there is one, the children of that thread (its own list,
 * /proc/PID/task/TID/children) are noted too: the FORK read next is that
 * thread's, and the child it makes is attached to that thread's list after
 * the read, before the fork returns.  Any child the thread makes later
 * comes after that one returned.  So the child is the thread's one new
 * child (pid not noted before, started no earlier than the look, and not a
 * task of ours), as soon as there is exactly one; two or more: not known
 * which.  The start time leaves out an orphan reparented to the thread
 * meanwhile (the thread is the first alive of a process whose other thread
 * ended, or of a subreaper or a pid namespace's init): it started before.
 * The child itself is always among them when it is looked for (below), so
 * another is taken only where it is alone: the forking thread unseen (the
 * look between its queueing and its sleep) while another was in fork(2),
 * and an orphan started in the same clock tick (10 ms) before the look.
 *
 * Unsure, the fork's pid is lost (never guessed): clone3(2), whose flags
 * are in the caller's memory (CLONE_PARENT would attach the child to the
 * parent's parent), clone(2) with CLONE_PARENT, two threads in fork(2) at
 * once, none seen (the look came before the forking thread slept), a
 * second FORK of the process read while the first's child is not known
 * yet (which child is whose), and a child not there when its uffd has
 * messages (the parent ended and it was reparented: it runs only once
 * attached).  A lost pid costs nothing until the fork discards shared
 * memory still to come: that event is then undecided (the daemon fails).
 *
 * The child is looked for when its own uffd has messages (it must be
 * there then) and at its parent's next look that sees the same thread in
 * fork(2) again (its first fork has returned; before that second FORK is
 * read).  Forks of forks: the same, with the pid found for the parent.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>

#define LOG_PREFIX "fork: "
#include "common/log.h"
#include "common/proc-stat.h"
#include "common/proc-task.h"
#include "lazy/lazy-daemon.h"

#ifndef CLONE_VM
#define CLONE_VM	0x00000100
#endif
#ifndef CLONE_PARENT
#define CLONE_PARENT	0x00008000
#endif

static void forker_clear(struct lazy_forker *f)
{
	free(f->kids);
	f->kids = NULL;
	f->nr_kids = 0;
	f->tid = 0;
}

void lazy_fork_look_start(struct lazy_task *t)
{
	forker_clear(&t->forking);
	t->nr_forkers = 0;
	t->forkers_unsure = false;
}

void lazy_fork_look_thread(struct lazy_task *t, pid_t tid, long nr, unsigned long long a0)
{
	if (nr == SYS_clone3 || (nr == SYS_clone && (a0 & CLONE_PARENT)))
		t->forkers_unsure = true;
	else if (!(nr == SYS_fork || (nr == SYS_clone && !(a0 & CLONE_VM))))
		return;
	t->nr_forkers++;
	t->forking.tid = tid;
}

static void fork_lost(struct lazy_task *t, const char *why)
{
	/* said where it may matter: it maps shared memory still to come */
	bool matters = lazy_shmem_wants_look(t);

	forker_clear(&t->fork_from);
	t->fork_pid = FORK_PID_LOST;
	if (matters)
		pr_info("a child of task %d (forked by process %d): its pid is not known (%s); "
			"a discard of its shared memory still to come will be undecided", t->pid,
			t->fork_ppid, why);
	else
		pr_debug("a child of task %d: pid not known (%s)", t->pid, why);
}

static bool is_ours(const struct lazy_daemon *d, pid_t pid)
{
	for (const struct lazy_task *t = d->tasks; t; t = t->next)
		if (t->proc_pid == pid)
			return true;
	return false;
}

static bool noted(const struct lazy_forker *f, pid_t pid)
{
	for (size_t i = 0; i < f->nr_kids; i++)
		if (f->kids[i] == pid)
			return true;
	return false;
}

void lazy_fork_find(struct lazy_daemon *d, struct lazy_task *t, bool must_be_there)
{
	pid_t *kids, found = 0;
	size_t nr, nr_new = 0;

	if (t->fork_pid != FORK_PID_PENDING)
		return;
	if (proc_thread_children(t->fork_ppid, t->fork_from.tid, &kids, &nr)) {
		fork_lost(t, "the thread that forked it is gone");
		return;
	}
	for (size_t i = 0; i < nr; i++) {
		struct proc_stat st;

		if (noted(&t->fork_from, kids[i]) || is_ours(d, kids[i]) ||
		    proc_stat_read(kids[i], &st) < 22 || st.f[22] < t->fork_from.since)
			continue;	/* (a stat not read: it is gone) */
		nr_new++;
		found = kids[i];
	}
	free(kids);
	if (nr_new > 1) {
		fork_lost(t, "the thread that forked it has more than one new child");
	} else if (nr_new == 1) {
		forker_clear(&t->fork_from);
		t->fork_pid = FORK_PID_FOUND;
		t->proc_pid = found;
		pr_info("a child of task %d: process %d", t->pid, found);
	} else if (must_be_there) {
		fork_lost(t, "not among the children of the thread that forked it");
	}
}

void lazy_fork_look_end(struct lazy_daemon *d, struct lazy_task *t)
{
	if (t->nr_forkers != 1 || t->forkers_unsure) {
		t->forking.tid = 0;
		return;
	}
	/* the FORK about to be read may be a second one of the same thread:
	 * its first has returned, the child is there by now */
	for (struct lazy_task *c = d->tasks; c; c = c->next)
		if (c->fork_pid == FORK_PID_PENDING && c->fork_ppid == t->proc_pid &&
		    c->fork_from.tid == t->forking.tid)
			lazy_fork_find(d, c, false);
	t->forking.since = proc_stat_now_ticks();
	if (proc_thread_children(t->proc_pid, t->forking.tid, &t->forking.kids,
				 &t->forking.nr_kids))
		t->forking.tid = 0;
}

void lazy_fork_begin(struct lazy_daemon *d, struct lazy_task *parent, struct lazy_task *child)
{
	bool earlier = false;

	child->fork_ppid = parent->proc_pid;
	child->fork_pid = FORK_PID_PENDING;
	if (!parent->proc_pid) {
		child->fork_ppid = parent->host_pid;
		fork_lost(child, "its parent's is not known");
		return;
	}
	if (!parent->forking.tid) {
		fork_lost(child, parent->forkers_unsure ?
			  "a thread of the parent was in clone3(2), or clone(2) with CLONE_PARENT" :
			  parent->nr_forkers ? "more than one thread of the parent was in fork(2)" :
			  "no thread of the parent was seen in fork(2)");
		return;
	}
	/* consumed: the next FORK has a look of its own */
	child->fork_from = parent->forking;
	parent->forking = (struct lazy_forker){ 0 };
	for (struct lazy_task *c = d->tasks; c; c = c->next) {
		if (c == child || c->fork_pid != FORK_PID_PENDING || c->fork_ppid != child->fork_ppid)
			continue;
		fork_lost(c, "its parent forked again before it was found");
		earlier = true;
	}
	if (earlier)
		fork_lost(child, "its parent forked it while an earlier child was not found yet");
}

void lazy_fork_free(struct lazy_task *t)
{
	forker_clear(&t->fork_from);
	forker_clear(&t->forking);
}
