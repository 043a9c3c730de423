/*
 * The guardian process and the daemon's side of it (guardian.h).
 *
 * Why a process of its own: a userfaultfd's registrations live as long as
 * the file does, not as long as the process that reads it.  The daemon's
 * copy dies with the daemon; a second copy in another process keeps the
 * ranges registered, and a fault there then waits (it is not zero-filled)
 * until someone poisons the page or the last copy closes.  The guardian is
 * that someone.  It reads nothing while the daemon lives: the daemon stays
 * the only reader of every uffd.
 *
 * The daemon must release its copy's twin whenever it closes a uffd (a task
 * that has all its pages, or exited): otherwise the guardian would keep the
 * task's VMAs registered, and a fault on a page that was never dumped would
 * wait for a reader that is gone.  Between the daemon's close and ours such
 * a fault waits; our close wakes it (the kernel wakes every waiter when the
 * last copy goes) and the kernel fills the page.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "guardian: "
#include "common/array.h"
#include "common/log.h"
#include "lazy/guardian.h"
#include "lazy/lazy-daemon.h"

#define STOP_WAIT_MS 5000	/* for the guardian to exit after END */
#define SEND_WAIT_MS 1000	/* for room on the socket: the guardian reads at once */

/* ---- the guardian ---- */

static void close_fds_but(const int *keep, int nr)
{
	unsigned int from = 3;

	/* keep[] is sorted by the caller */
	for (int i = 0; i < nr; i++) {
		if (keep[i] < (int)from)
			continue;
		if (keep[i] > (int)from)
			syscall(SYS_close_range, from, keep[i] - 1, 0);
		from = keep[i] + 1;
	}
	syscall(SYS_close_range, from, ~0U, 0);
}

static void sort_fds(int *fds, int nr)
{
	for (int i = 1; i < nr; i++)
		for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int x = fds[j];

			fds[j] = fds[j - 1];
			fds[j - 1] = x;
		}
}

static void table_release(struct guardian_table *tab, uint32_t id)
{
	for (size_t i = 0; i < tab->nr; i++)
		if (tab->e[i].id == id) {
			close(tab->e[i].uffd);
			tab->e[i] = tab->e[--tab->nr];
			return;
		}
	pr_warn("the daemon released uffd %u, which we did not hold", id);
}

int guardian_table_add(struct guardian_table *tab, const struct guardian_entry *e)
{
	if (ARRAY_GROW(tab->e, tab->cap, tab->nr + 1, 16))
		return -ENOMEM;
	tab->e[tab->nr++] = *e;
	return 0;
}

static void table_close_all(struct guardian_table *tab)
{
	for (size_t i = 0; i < tab->nr; i++)
		close(tab->e[i].uffd);
	tab->nr = 0;
}

/* 1 with a message (*fd: a uffd that came with it, or -1), 0 at EOF, -errno. */
static int recv_msg(int sock, struct guardian_msg *m, int *fd, int flags)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	if (n == 0)
		return 0;
	if (n != sizeof(*m)) {
		if (*fd >= 0)
			close(*fd);
		return -EBADMSG;
	}
	return 1;
}

enum { NEXT_MSG, NEXT_ACCEPT, NEXT_DEAD };

/*
 * What comes next: a message from the daemon; until the restore has
 * connected, its connection (ours the instant it is accepted, so no
 * SIGKILL of the daemon can catch it in the daemon's hands alone:
 * guardian-handshake.c); or the daemon's end, by its pidfd (its keeper
 * holds the daemon's end of our socket open: no EOF comes).  A message
 * first: what the daemon sent before it died is read before its end.
 */
static int wait_next(int sock, int daemon_pidfd, struct guardian_conn *c)
{
	bool accepting = c->accepting && c->listen_fd >= 0 && c->conn < 0;
	struct pollfd p[3] = {
		{ .fd = sock, .events = POLLIN },
		{ .fd = daemon_pidfd, .events = POLLIN },
		{ .fd = accepting ? c->listen_fd : -1, .events = POLLIN },
	};

	/* no blocking read instead: the keeper may hold the daemon's end for good */
	for (bool said = false; poll(p, 3, -1) < 0;) {
		if (errno == EINTR)
			continue;
		if (!said)
			pr_warn("cannot wait for the daemon (%m): trying again every 10 ms");
		said = true;
		usleep(10000);
	}
	if (p[0].revents)
		return NEXT_MSG;
	return p[2].revents ? NEXT_ACCEPT : NEXT_DEAD;
}

static int guardian_main(int sock, pid_t daemon_pid, int daemon_pidfd, struct guardian_conn *c)
{
	struct guardian_table tab = { 0 };
	struct guardian_keeper k = { 0, -1 };
	bool dead = false;
	int ret;

	for (;;) {
		struct guardian_msg m;
		int fd, next = dead ? NEXT_MSG : wait_next(sock, daemon_pidfd, c);

		if (next == NEXT_ACCEPT) {
			guardian_accept(c, sock);
			continue;
		}
		if (next == NEXT_DEAD) {
			dead = true;	/* what it sent is all queued: read to the end */
			continue;
		}
		ret = recv_msg(sock, &m, &fd, dead ? MSG_DONTWAIT : 0);
		if (ret == -EAGAIN && dead)
			ret = 0;
		if (ret <= 0)
			break;
		switch (m.op) {
		case GUARDIAN_HOLD: {
			struct guardian_entry e = { .id = m.id, .pid = m.pid,
						    .host_pid = m.host_pid, .forked = m.forked,
						    .uffd = fd };

			if (fd < 0) {
				pr_warn("uffd %u of task %d came without its fd", m.id, m.pid);
				break;
			}
			if (guardian_table_add(&tab, &e)) {
				/* the daemon still holds its copy: it only loses its guard */
				pr_warn("out of memory: task %d's uffd is not guarded", m.pid);
				close(fd);
			}
			break;
		}
		case GUARDIAN_RELEASE:
			table_release(&tab, m.id);
			break;
		case GUARDIAN_CONN:	/* the daemon accepted it: we did not read */
			if (fd < 0 || c->conn >= 0) {
				if (fd >= 0)
					close(fd);
				break;
			}
			guardian_conn_close(c);		/* the listening socket */
			c->conn = fd;
			c->restore_pid = m.pid;
			c->accepting = false;
			break;
		case GUARDIAN_NEXT:
			c->next_pid = m.pid;
			break;
		case GUARDIAN_CONN_DONE:
			/* every record read: only "restore finished" is left to come */
			guardian_conn_close(c);
			break;
		case GUARDIAN_KEEPER:
			guardian_keeper_hold(&k, m.pid);
			break;
		case GUARDIAN_END:
			guardian_conn_close(c);
			table_close_all(&tab);
			free(tab.e);
			return 0;
		default:
			if (fd >= 0)
				close(fd);
			pr_warn("unknown message %u from the daemon", m.op);
		}
	}
	/* its end (or a broken socket) without END: the daemon died */
	if (ret < 0)
		pr_warn("reading from the daemon: %s", strerror(-ret));
	/* a FORK's child it read and did not hand over: in its fd table still */
	guardian_take_keeper(&tab, &k);
	/* what the restore sent that the daemon never read comes too */
	guardian_take_queued(&tab, c);	/* said what it could not take */
	guardian_conn_close(c);
	guardian_drop_twins(&tab);
	ret = guardian_take_over(&tab, daemon_pid);
	table_close_all(&tab);
	free(tab.e);
	return ret;
}

/* ---- the daemon's side ---- */

int guardian_start(struct lazy_guardian *g, int listen_fd, int dirfd, size_t nr_tasks)
{
	struct guardian_conn c = { .listen_fd = listen_fd, .accepting = listen_fd >= 0,
				   .conn = -1, .dirfd = dirfd,
				   .nr_tasks = nr_tasks, .since = lazy_start_ticks(getpid()) };
	int sv[2], keep[8], nr = 0, log_fd, err_fd, self_pidfd, pidfd_err;
	pid_t daemon_pid = getpid(), pid;

	g->pid = 0;
	g->sock = -1;
	g->keeper = 0;
	g->keeper_pidfd = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		pr_perror("socketpair for the guardian");
		return -errno;
	}
	/* the guardian's watch of our end (without it no keeper: see below) */
	self_pidfd = syscall(SYS_pidfd_open, daemon_pid, 0);
	pidfd_err = errno;
	pid = fork();
	if (pid < 0) {
		pr_perror("fork the guardian");
		close(sv[0]);
		close(sv[1]);
		if (self_pidfd >= 0)
			close(self_pidfd);
		return -errno;
	}
	if (pid == 0) {
		/*
		 * The stop signals stay blocked (inherited): they are the
		 * daemon's to honour; we end with the daemon, or by SIGKILL.
		 */
		prctl(PR_SET_NAME, "lazy-guardian");
		log_fds(&log_fd, &err_fd);
		keep[nr++] = sv[1];
		if (log_fd >= 0)
			keep[nr++] = log_fd;
		if (err_fd >= 0)
			keep[nr++] = err_fd;
		if (listen_fd >= 0)
			keep[nr++] = listen_fd;
		if (dirfd >= 0)
			keep[nr++] = dirfd;
		if (self_pidfd >= 0)
			keep[nr++] = self_pidfd;
		sort_fds(keep, nr);
		close_fds_but(keep, nr);
		_exit(guardian_main(sv[1], daemon_pid, self_pidfd, &c));
	}
	close(sv[1]);
	g->pid = pid;
	g->sock = sv[0];
	pr_info("pid %d holds a copy of every userfaultfd", pid);
	/* a keeper holds our end of the socket: the guardian must see our end otherwise */
	if (self_pidfd >= 0) {
		close(self_pidfd);
		keeper_start(g);
	} else {
		pr_warn("no keeper (pidfd_open: %s): a SIGKILL of this daemon right after it read a "
			"FORK would leave the child's missing pages reading as zeros",
			strerror(pidfd_err));
	}
	return 0;
}

int guardian_send(int sock, const struct guardian_msg *m, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (sock < 0)
		return -EPIPE;
	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	/* never blocked for long by a peer that does not read (stopped) */
	for (int waited = 0;;) {
		struct pollfd p = { .fd = sock, .events = POLLOUT };

		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0 || (errno != EINTR && errno != EAGAIN) || waited >= SEND_WAIT_MS)
			break;
		if (errno == EAGAIN && poll(&p, 1, SEND_WAIT_MS - waited) == 0)
			waited = SEND_WAIT_MS;
		else if (errno == EAGAIN)
			waited += 10;	/* room came, or it hung up: try again, bounded */
	}
	if (n == sizeof(*m))
		return 0;
	return n < 0 ? -errno : -EIO;
}

int guardian_hold(struct lazy_guardian *g, int uffd, pid_t pid, pid_t host_pid, bool forked,
		  uint32_t *id)
{
	struct guardian_msg m = { .op = GUARDIAN_HOLD, .id = ++g->next_id, .pid = pid,
				  .host_pid = host_pid, .forked = forked };
	int ret;

	*id = 0;
	if (g->sock < 0)
		return -EPIPE;
	ret = guardian_send(g->sock, &m, uffd);
	if (ret) {
		pr_warn("cannot hand task %d's uffd to the guardian (%s): a SIGKILL of this "
			"daemon would leave its missing pages reading as zeros", pid, strerror(-ret));
		return ret;
	}
	*id = m.id;
	return 0;
}

int guardian_take_conn(struct lazy_guardian *g, int *conn, pid_t *restore_pid)
{
	struct guardian_msg m;
	int fd, ret = recv_msg(g->sock, &m, &fd, 0);

	if (ret <= 0) {
		guardian_lost(g);
		return -EPIPE;
	}
	if (m.op != GUARDIAN_CONN) {
		pr_err("pid %d sent message %u where the restore's connection should come",
		       g->pid, m.op);
		if (fd >= 0)
			close(fd);
		return -EBADMSG;
	}
	if (fd < 0)	/* its accept failed: it said why */
		return m.id ? -(int)m.id : -EIO;
	*conn = fd;
	*restore_pid = m.pid;
	return 0;
}

void guardian_hold_conn(struct lazy_guardian *g, int conn, pid_t restore_pid)
{
	struct guardian_msg m = { .op = GUARDIAN_CONN, .pid = restore_pid };
	int ret = guardian_send(g->sock, &m, conn);

	if (ret)
		pr_warn("cannot hand the restore's connection to the guardian (%s): a SIGKILL of "
			"this daemon during the handshake would leave the missing pages of the "
			"tasks still queued on it reading as zeros", strerror(-ret));
}

void guardian_next(struct lazy_guardian *g, int32_t pid)
{
	struct guardian_msg m = { .op = GUARDIAN_NEXT, .pid = pid };

	if (g->sock >= 0 && guardian_send(g->sock, &m, -1))
		pr_warn("cannot tell pid %d which record comes next: a SIGKILL of this daemon "
			"before task %d's uffd is handed over would leave its missing pages "
			"reading as zeros unless its credentials name it", g->pid, pid);
}

void guardian_conn_done(struct lazy_guardian *g)
{
	struct guardian_msg m = { .op = GUARDIAN_CONN_DONE };

	/* not fatal: its copy of a connection with no record left only keeps it open */
	if (g->sock >= 0 && guardian_send(g->sock, &m, -1))
		pr_warn("cannot tell pid %d to close its copy of the restore's connection", g->pid);
}

void guardian_reap(pid_t *pid, int wait_ms)
{
	for (int waited = 0; *pid; waited++) {
		pid_t got = waitpid(*pid, NULL, WNOHANG);

		if (got == *pid || (got < 0 && errno != EINTR)) {
			*pid = 0;
			break;
		}
		if (waited >= wait_ms) {
			/* it must not outlive us: ours to end, by its pid */
			if (wait_ms)
				pr_warn("pid %d did not exit within %d ms: killed", *pid, wait_ms);
			kill(*pid, SIGKILL);
			waitpid(*pid, NULL, 0);
			*pid = 0;
			break;
		}
		usleep(1000);
	}
}

/* The guardian, then its keeper, which ends once the guardian has */
static void reap(struct lazy_guardian *g, int wait_ms)
{
	guardian_reap(&g->pid, wait_ms);
	guardian_reap(&g->keeper, 1000);
	if (g->keeper_pidfd >= 0)
		close(g->keeper_pidfd);
	g->keeper_pidfd = -1;
}

void guardian_release(struct lazy_guardian *g, uint32_t id)
{
	struct guardian_msg m = { .op = GUARDIAN_RELEASE, .id = id };
	int ret;

	if (!id || g->sock < 0)
		return;
	ret = guardian_send(g->sock, &m, -1);
	if (!ret)
		return;
	/*
	 * Its copy would keep the task's VMAs registered with nobody to
	 * answer a fault there: better no guardian than a task hung.
	 */
	pr_warn("cannot tell pid %d to release a uffd (%s): ended, this daemon goes on unguarded",
		g->pid, strerror(-ret));
	if (g->pid > 0)
		kill(g->pid, SIGKILL);
	close(g->sock);
	g->sock = -1;
	reap(g, STOP_WAIT_MS);
}

void guardian_lost(struct lazy_guardian *g)
{
	if (g->sock < 0)
		return;
	pr_warn("pid %d is gone: a SIGKILL of this daemon would now leave the missing "
		"pages reading as zeros", g->pid);
	close(g->sock);
	g->sock = -1;
	reap(g, 1000);
}

void guardian_stop(struct lazy_guardian *g)
{
	struct guardian_msg m = { .op = GUARDIAN_END };

	if (g->sock >= 0) {
		if (guardian_send(g->sock, &m, -1))
			pr_warn("cannot tell the guardian to end: %m");
		close(g->sock);
		g->sock = -1;
	}
	reap(g, STOP_WAIT_MS);
}
