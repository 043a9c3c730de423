/*
 * The guardian's share of the restore's connection.
 *
 * The restore does not wait for the daemon: when the daemon is killed, the
 * records of some processes may still be queued on the connection, or the
 * connection itself in the listening socket's backlog, their uffds in
 * flight.  Dropped with the daemon's copies of both, those uffds would be
 * released, the kernel would unregister their ranges, and their tasks would
 * read zeros.  So nothing of the handshake is ever in the daemon's hands
 * alone:
 *
 * - we keep a copy of the listening socket from our fork, and we accept
 *   the restore's connection ourselves (guardian_accept(), with the
 *   daemon's check of the peer), then hand the daemon a copy
 *   (GUARDIAN_CONN): the connection is held from the instant it leaves
 *   the backlog.  Accepted by the daemon, it was the daemon's alone until
 *   its copy reached us.
 * - the daemon takes nothing off the connection before we could take it
 *   ourselves (lazy-handshake.c): it tells us a record's pid before it
 *   reads it (GUARDIAN_NEXT), and a uffd's message stays queued until our
 *   copy of that uffd is on its way (GUARDIAN_HOLD; the daemon peeked it).
 *   Killed between that hold and its read, the message is still here, a
 *   second copy of a uffd we hold: dropped (take_one()), as the daemon
 *   drops a second uffd for a process.
 *
 * We keep the connection until the daemon has read every record
 * (GUARDIAN_CONN_DONE).  At a takeover we take what is left on it
 * (accepting it first if we never did), with the daemon's own code for a
 * handshake that fails part way (lazy-records.c: lazy_drain_records(),
 * each record waited for 100 ms at most): every uffd joins the table and
 * is poisoned like the ones the daemon handed us.
 *
 * The restore may still be sending (it does not know the daemon is gone):
 * a record that came after we took what was there would be queued on our
 * copy, its send a success, and die unread when we close it, the restore
 * gone on to run its tasks over their zeros.  So once nothing more is
 * queued we shut the connection down for reading: from then on the
 * restore's send fails (EPIPE, as with the daemon's socket gone; ours then
 * kills its tasks before they run), and what came before is taken too.
 * We never write to the restore.
 *
 * Which process a uffd registers: found as the daemon finds it
 * (host-pid.c: its message's credentials, else a search below the restore
 * and in /proc, with the images directory we keep for it), not the
 * image's pid, which in a tree restored into its own pid namespace is
 * another process here.  A uffd whose pid the daemon read before it died
 * comes alone: its pid is GUARDIAN_NEXT's.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_PREFIX "guardian: "
#include "common/log.h"
#include "lazy/guardian.h"
#include "lazy/lazy-handshake.h"

#define ACCEPT_TRIES 16		/* connections looked at in the backlog */

struct take_arg {
	const struct guardian_conn *c;
	struct guardian_table *tab;
	int taken;		/* or -ENOMEM */
};

/* A uffd of pid's held already: the daemon's copy, handed over before it read the message. */
static bool held(const struct guardian_table *tab, pid_t pid)
{
	for (size_t i = 0; i < tab->nr; i++)
		if (tab->e[i].pid == pid && !tab->e[i].forked)
			return true;
	return false;
}

/* One record's uffd (ours to close): into the table, with its pid here. */
static void take_one(void *arg, int32_t pid, int uffd, pid_t cred_pid)
{
	struct take_arg *a = arg;
	const struct guardian_conn *c = a->c;
	struct guardian_entry e = { .pid = pid, .uffd = uffd };

	if (pid > 0) {
		e.host_pid = lazy_host_pid_in(c->dirfd, c->restore_pid, c->since, pid, cred_pid);
	} else if (cred_pid > 0 && cred_pid != c->restore_pid) {
		e.host_pid = cred_pid;
		e.pid = lazy_ns_pid(cred_pid);
	}
	if (e.pid > 0 && held(a->tab, e.pid)) {
		pr_info("task %d: a copy of its uffd, handed over by the daemon before it read "
			"the message, was left on the connection: closed, ours is poisoned", e.pid);
		close(uffd);
		return;
	}
	if (e.pid <= 0 || e.host_pid <= 0) {
		pr_err("a uffd queued for the daemon, its pid read by the daemon, came without "
		       "credentials naming its process: its lazy pages cannot be poisoned and "
		       "will read as zeros");
		close(uffd);
		return;
	}
	if (a->taken < 0 || guardian_table_add(a->tab, &e)) {
		pr_err("task %d: out of memory: its lazy pages cannot be poisoned and will read "
		       "as zeros", e.pid);
		close(uffd);
		a->taken = -ENOMEM;
		return;
	}
	pr_info("task %d (pid %d here): its uffd was still queued for the daemon", e.pid,
		e.host_pid);
	a->taken++;
}

/*
 * The restore's connection waiting in the backlog, taken as the daemon
 * would take it; then the listening socket is closed: a restore that
 * connects from now on is refused, as by a dead daemon.
 */
static void accept_waiting(struct guardian_conn *c)
{
	struct pollfd p = { .fd = c->listen_fd, .events = POLLIN };

	for (int i = 0; i < ACCEPT_TRIES && c->conn < 0 && poll(&p, 1, 0) == 1; i++) {
		int fd = lazy_take_connection(c->listen_fd, &c->restore_pid);

		if (fd >= 0)
			c->conn = fd;
		else if (fd != -EAGAIN)
			break;
	}
	close(c->listen_fd);
	c->listen_fd = -1;
}

void guardian_accept(struct guardian_conn *c, int sock)
{
	int fd = lazy_take_connection(c->listen_fd, &c->restore_pid);
	struct guardian_msg m = { .op = GUARDIAN_CONN, .pid = c->restore_pid };
	int ret;

	if (fd == -EAGAIN)	/* a peer refused (said), or gone: wait on */
		return;
	c->accepting = false;
	if (fd < 0) {
		m.id = -fd;	/* said; the listening socket kept for a takeover */
	} else {
		c->conn = fd;
		close(c->listen_fd);	/* the next to connect is refused, as by the daemon */
		c->listen_fd = -1;
	}
	/* the daemon gone: its end comes next (EOF), and the takeover with it */
	ret = guardian_send(sock, &m, fd);
	if (ret && fd >= 0)
		pr_warn("cannot hand the restore's connection to the daemon: %s", strerror(-ret));
}

int guardian_take_queued(struct guardian_table *tab, struct guardian_conn *c)
{
	struct take_arg a = { c, tab, 0 };
	struct lazy_drain how = { .take = take_one, .arg = &a };

	if (c->conn < 0 && c->listen_fd >= 0)
		accept_waiting(c);
	if (c->conn < 0)
		return 0;
	lazy_drain_records(c->conn, c->nr_tasks, c->next_pid, &how);
	/* nothing more now: refused from here on, then what came before */
	if (shutdown(c->conn, SHUT_RD))
		pr_warn("shut the restore's connection down: %m");
	else
		lazy_drain_records(c->conn, c->nr_tasks, 0, &how);
	return a.taken;
}

void guardian_conn_close(struct guardian_conn *c)
{
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->conn >= 0)
		close(c->conn);
	c->listen_fd = c->conn = -1;
}
