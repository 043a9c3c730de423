/*
 * The keeper: the guardian's last window closed (guardian.h).
 *
 * A read() of a uffd that returns a FORK installs the child's new uffd in
 * the reader's fd table.  Until the daemon has handed the guardian its copy
 * (one sendmsg later, lazy_task_new()), that uffd is the daemon's alone: a
 * SIGKILL then closed it, the kernel unregistered the child's ranges, and
 * the child's missing pages read as zeros.  Nothing the daemon does in
 * that window can shorten it to nothing: the fd comes in the read.
 *
 * So the fd table itself outlives the daemon.  The keeper is a child of
 * the daemon made with clone(CLONE_FILES): it shares the daemon's fd table
 * (not its memory: a copy of it, of which it touches only its stack), so
 * the table, and every fd in it, stays open as long as the keeper lives,
 * the daemon SIGKILLed or not.  It does nothing but wait, every signal
 * blocked (SIGTERM, SIGINT and SIGHUP are the daemon's; a process-group
 * kill from a shell reaches it too), for the guardian to end.
 *
 * The guardian knows the keeper (GUARDIAN_KEEPER) and, since the keeper
 * holds the daemon's end of their socket open, knows the daemon's end by
 * its pidfd.  At its takeover it takes every uffd of the keeper's table
 * with pidfd_getfd() (/proc/KEEPER/fd/N reading "anon_inode:[userfaultfd]"),
 * ends the keeper (SIGKILL: its table is then released, with the daemon's
 * lock on the images and its sockets), and, once the uffds queued on the
 * restore's connection have come too, drops those it held already
 * (kcmp(KCMP_FILE): every anon inode has the same inode number).  Each one
 * left is a FORK's child nobody handed over, its parent not known: an
 * orphan, poisoned through its uffd over the missing runs of every
 * process of the table and all their descendants (guardian-poison.c).
 *
 * The keeper's end: with the guardian's, always (it polls the guardian's
 * pidfd): after END at a normal end, after the takeover (the guardian
 * kills it first), or when the guardian dies.  The daemon reaps it after
 * the guardian (guardian.c, reap()).  It does not watch the daemon: it
 * must outlive a killed daemon until the guardian has taken its uffds.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX "guardian: "
#include "common/log.h"
#include "common/mono-time.h"
#include "common/proc-fd.h"
#include "lazy/guardian.h"

#define KEEPER_STACK	(64 << 10)
#define KEEPER_EXIT_MS	1000	/* for the keeper to die of our SIGKILL */

#ifndef PR_SET_PTRACER
#define PR_SET_PTRACER 0x59616d61
#endif

/* ---- the keeper ---- */

struct keeper_arg {
	int guardian_pidfd;
	pid_t guardian_pid;
};

static int keeper_main(void *arg)
{
	const struct keeper_arg *a = arg;
	struct pollfd p = { .fd = a->guardian_pidfd, .events = POLLIN };
	sigset_t all;

	/* nothing here may close an fd, nor log: the table and the log are the daemon's */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	prctl(PR_SET_NAME, "lazy-keeper");
	/* Yama's ptrace_scope 1: the guardian, our sibling, may take our fds */
	prctl(PR_SET_PTRACER, a->guardian_pid, 0, 0, 0);
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	return 0;	/* glibc's clone() ends us with exit(2): nothing of the daemon's runs */
}

/* ---- the daemon's side ---- */

void keeper_start(struct lazy_guardian *g)
{
	struct keeper_arg a = { .guardian_pid = g->pid };
	struct guardian_msg m = { .op = GUARDIAN_KEEPER };
	int64_t t0 = mono_us();
	char *stack;
	pid_t pid;
	int ret;

	a.guardian_pidfd = syscall(SYS_pidfd_open, g->pid, 0);
	if (a.guardian_pidfd < 0) {
		pr_warn("no keeper (pidfd_open of pid %d: %m): a SIGKILL of this daemon right "
			"after it read a FORK would leave the child's missing pages reading as zeros",
			g->pid);
		return;
	}
	stack = malloc(KEEPER_STACK);
	errno = ENOMEM;
	/* no CLONE_VM: its memory is a copy of ours, stack and arg included */
	pid = stack ? clone(keeper_main, stack + KEEPER_STACK, CLONE_FILES | SIGCHLD, &a) : -1;
	if (pid < 0)
		pr_warn("no keeper (clone: %m): a SIGKILL of this daemon right after it read a "
			"FORK would leave the child's missing pages reading as zeros");
	free(stack);
	if (pid < 0) {
		close(a.guardian_pidfd);
		return;
	}
	g->keeper = pid;
	g->keeper_pidfd = a.guardian_pidfd;	/* it polls it: closed once it is reaped */
	m.pid = pid;
	ret = guardian_send(g->sock, &m, -1);
	if (ret) {
		/* unknown to the guardian, it would only hold our table after our death */
		pr_warn("cannot tell pid %d about the keeper (%s): ended", g->pid, strerror(-ret));
		kill(pid, SIGKILL);
		guardian_reap(&g->keeper, 0);
		close(g->keeper_pidfd);
		g->keeper_pidfd = -1;
		return;
	}
	pr_info("keeper: pid %d shares this daemon's fd table (started in %lld us)", pid,
		(long long)(mono_us() - t0));
}

/* ---- the guardian's side ---- */

void guardian_keeper_hold(struct guardian_keeper *k, pid_t pid)
{
	if (k->pidfd >= 0)
		close(k->pidfd);
	k->pid = pid;
	/* it waits for our end: alive, its pid its own */
	k->pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (k->pidfd < 0)
		pr_warn("pidfd_open of the keeper (pid %d): %m: a FORK's child the daemon read and "
			"did not hand over would not be poisoned", pid);
}

struct pull {
	struct guardian_keeper *k;
	struct guardian_table *tab;
	unsigned int taken, failed;
};

static int pull_one(int fd, void *arg)
{
	struct pull *p = arg;
	struct guardian_entry e = { .forked = true, .orphan = true };
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->k->pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;	/* closed meanwhile: not a uffd the daemon held */
	link[n] = '\0';
	if (strcmp(link, "anon_inode:[userfaultfd]"))
		return 0;
	e.uffd = syscall(SYS_pidfd_getfd, p->k->pidfd, fd, 0);
	if (e.uffd < 0 || guardian_table_add(p->tab, &e)) {
		pr_err("the daemon's uffd %d (held by its keeper, pid %d): %s: if it is a FORK's "
		       "child's, its missing pages will read as zeros", fd, p->k->pid,
		       e.uffd < 0 ? strerror(errno) : "out of memory");
		if (e.uffd >= 0)
			close(e.uffd);
		p->failed++;
		return 0;
	}
	p->taken++;
	return 0;
}

void guardian_take_keeper(struct guardian_table *tab, struct guardian_keeper *k)
{
	struct pull p = { k, tab, 0, 0 };
	struct pollfd gone = { .fd = k->pidfd, .events = POLLIN };
	int ret;

	if (k->pidfd < 0)
		return;
	ret = proc_each_fd(k->pid, pull_one, &p);
	if (ret < 0)
		pr_err("the fds of the daemon's keeper (pid %d): %s: a FORK's child the daemon read "
		       "and did not hand over will read zeros where its pages are missing",
		       k->pid, strerror(-ret));
	else
		pr_info("%u uffds of the daemon taken from its keeper (pid %d)", p.taken, k->pid);
	/* ours now: its copies, the daemon's lock and sockets go with it */
	if (syscall(SYS_pidfd_send_signal, k->pidfd, SIGKILL, NULL, 0) == 0)
		poll(&gone, 1, KEEPER_EXIT_MS);
	close(k->pidfd);
	k->pidfd = -1;
}

/* a and b the same open file: every anon inode has the same inode number */
static bool same_file(int a, int b)
{
	pid_t me = getpid();

	return syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

void guardian_drop_twins(struct guardian_table *tab)
{
	unsigned int dropped = 0, orphans = 0;

	/* an orphan goes if an entry known otherwise, or an orphan before it, is the same uffd */
	for (size_t i = 0; i < tab->nr; i++) {
		if (!tab->e[i].orphan)
			continue;
		for (size_t j = 0; j < tab->nr; j++) {
			if (j == i || (tab->e[j].orphan && j > i) ||
			    !same_file(tab->e[i].uffd, tab->e[j].uffd))
				continue;
			close(tab->e[i].uffd);
			tab->e[i--] = tab->e[--tab->nr];
			dropped++;
			break;
		}
	}
	for (size_t i = 0; i < tab->nr; i++)
		orphans += tab->e[i].orphan;
	if (dropped || orphans)
		pr_info("of the keeper's uffds %u were ours already, %u are FORK children nobody "
			"handed over", dropped, orphans);
}
