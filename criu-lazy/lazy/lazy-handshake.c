/*
 * The daemon's half of the lazy-pages socket (CRIU's protocol, so
 * either side can be CRIU's): one connection; per process of the tree an
 * int32 pid, then the process's userfaultfd as SCM_RIGHTS with a one-byte
 * payload (a zombie sends -pid and no fd); at the end the 32-bit word
 * "restore finished".  Nothing flows back.  Our restore adds credentials
 * naming the process to the uffd's message (lazy-socket.h).
 *
 * A handshake that fails part way (a bad record, an image error, a
 * timeout, a stop) first takes the uffds the restore had already queued
 * on the connection (drain_queued()): they would close with it, the kernel
 * would unregister their ranges, and their tasks would read zeros where
 * their lazy pages are.  Taken, they are poisoned with the rest.
 *
 * Nothing of the handshake is ever ours alone, so that a SIGKILL at any
 * instant leaves every uffd with the guardian or still on the connection
 * it holds (guardian-handshake.c): the guardian accepts the connection
 * and hands us a copy; a record's pid is told to it before we read it
 * (guardian_next()), and its uffd's message is peeked, handed over
 * (lazy_task_new()), and only then read.
 *
 * Who may connect, and how a record is read, are lazy-records.c's: the
 * guardian takes the records left when we are killed the same way.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/evloop.h"
#include "common/env-number.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "lazy/lazy-daemon.h"
#include "lazy/lazy-handshake.h"
#include "lazy/prefetch.h"
#include "lazy/page-source.h"

/*
 * How long each step of the handshake is waited for, the restore's
 * connection included.  CRIU's daemon waits for the restore without a
 * limit; ours gives up after this, so a restore that failed before it
 * connected (its image checks) leaves a daemon that still serves a next
 * try within the time and then exits 1 (criu-lazy.8).
 */
#define HANDSHAKE_TIMEOUT_S	120
#define HANDSHAKE_ENV		"CRIU_LAZY_HANDSHAKE_TIMEOUT"	/* seconds, for tests */

static int handshake_timeout_s(void)
{
	return (int)env_number(HANDSHAKE_ENV, 86400) ?: HANDSHAKE_TIMEOUT_S;
}

/*
 * Wait for fd, or for a stop signal (then the daemon gives up).  also: a
 * second fd to wait for, or -1: 1 when only it is readable.  timeout_ms:
 * -1 for the handshake's (said when it passes), else -ETIMEDOUT unsaid.
 */
static int wait_fds(const struct lazy_daemon *d, int fd, int also, int timeout_ms,
		    const char *what)
{
	struct pollfd p[3] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = d->signal_fd, .events = POLLIN },
		{ .fd = also, .events = POLLIN },	/* -1: ignored */
	};
	int timeout_s = handshake_timeout_s();
	int ret = poll(p, 3, timeout_ms < 0 ? timeout_s * 1000 : timeout_ms);
	int sig;

	if (ret < 0) {
		pr_perror("wait for %s", what);
		return -errno;
	}
	if (!ret) {
		if (timeout_ms < 0)
			pr_err("gave up waiting for %s after %d s", what, timeout_s);
		return -ETIMEDOUT;
	}
	if (p[1].revents && (sig = evloop_read_signal(d->signal_fd))) {
		pr_err("stopped by signal %d (%s) while waiting for %s", sig, strsignal(sig), what);
		return -EINTR;
	}
	return p[0].revents || !p[2].revents ? 0 : 1;
}

static int wait_readable(const struct lazy_daemon *d, int fd, const char *what)
{
	return wait_fds(d, fd, -1, -1, what);
}

/* The next record's pid, peeked: it stays queued (the guardian's) until we read it. */
static int peek_pid(const struct lazy_daemon *d, int conn, int32_t *pid)
{
	ssize_t n;
	int ret = wait_readable(d, conn, "a task from the restore");

	if (ret)
		return ret;
	n = recv(conn, pid, sizeof(*pid), MSG_PEEK | MSG_WAITALL);
	if (n < 0) {
		pr_perror("receive a pid from the restore");
		return -errno;
	}
	if (n != sizeof(*pid)) {
		pr_err("restorer unexpectedly closed the connection");
		return -ECONNRESET;
	}
	return 0;
}

/* The pid peeked, read now (it is there: nothing else reads the connection). */
static int consume_pid(int conn, int32_t pid)
{
	int32_t again;

	if (recv(conn, &again, sizeof(again), MSG_DONTWAIT) != sizeof(again) || again != pid) {
		pr_err("the pid %d peeked on the restore's connection could not be read", pid);
		return -EIO;
	}
	return 0;
}

static bool pid_expected(const struct lazy_tree *tree, int32_t pid)
{
	for (size_t i = 0; i < tree->nr_pids; i++)
		if (tree->pids[i] == (pid_t)pid)
			return true;
	return false;
}

static bool pid_seen(const struct lazy_daemon *d, int32_t pid)
{
	for (const struct lazy_task *t = d->tasks; t; t = t->next)
		if (t->pid == pid)
			return true;
	return false;
}

/*
 * Test only: stop ourselves (SIGSTOP) at a point of the handshake, so that
 * a test can SIGKILL us there with the restore's records still queued on
 * the connection (guardian-handshake.c).  Each is a record's number N (1:
 * the first): STOP_AT before we read record N (1: right after the
 * connection came to us), AFTER_ACCEPT right after the connection came
 * to us (N is 1), AFTER_RECV right after record N's uffd came to us
 * (peeked), before the guardian has its copy, AFTER_HOLD right after the
 * guardian has it, before its message is read.
 */
#define STOP_AT_ENV		"CRIU_LAZY_TEST_STOP_AT_RECORD"
#define STOP_AFTER_ACCEPT_ENV	"CRIU_LAZY_TEST_STOP_AFTER_ACCEPT"
#define STOP_AFTER_RECV_ENV	"CRIU_LAZY_TEST_STOP_AFTER_RECV"
#define STOP_AFTER_HOLD_ENV	"CRIU_LAZY_TEST_STOP_AFTER_HOLD"

void lazy_test_stop(const char *env, size_t record)
{
	uint64_t n = env_number(env, UINT32_MAX);

	if (!n || n != record)
		return;
	pr_warn("test hook %s=%llu: stopped", env, (unsigned long long)n);
	raise(SIGSTOP);
}

/*
 * How long the restore's connection may wait in the backlog for the
 * guardian to accept it: longer, the guardian does not read (stopped), and
 * we accept it ourselves rather than keep the restore waiting (as a uffd
 * is not held when the guardian has no room for it within 1 s).
 */
#define GUARDIAN_ACCEPT_MS	1000

static bool readable_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return fd >= 0 && poll(&p, 1, 0) == 1;
}

/*
 * The restore's connection: 0 taken, 1 none to take now, or -errno.  The
 * guardian accepts it and keeps a copy (guardian-handshake.c): accepted
 * here, it was ours alone until our copy reached the guardian, and a
 * SIGKILL then took every record queued on it.  We accept it ourselves
 * (self) only without a guardian (it is gone: nothing to guard), or when
 * the guardian left it in the backlog (GUARDIAN_ACCEPT_MS): then it gets
 * a copy as soon as it reads (the listening socket is non-blocking: one of
 * us may take a connection the other saw).
 */
static int take_connection(struct lazy_daemon *d, int listen_fd, bool self)
{
	int fd, ret;

	if (!self) {
		ret = guardian_take_conn(&d->guardian, &fd, &d->restore_pid);
		if (ret)
			return ret == -EPIPE ? 1 : ret;
	} else {
		fd = lazy_take_connection(listen_fd, &d->restore_pid);
		if (fd == -EAGAIN)
			return 1;
		if (fd < 0)
			return fd;
		if (d->guardian.sock >= 0) {
			pr_warn("the guardian (pid %d) did not take the restore's connection: "
				"accepted here, its copy handed over", d->guardian.pid);
			guardian_hold_conn(&d->guardian, fd, d->restore_pid);
		}
	}
	d->conn_fd = fd;
	lazy_test_stop(STOP_AFTER_ACCEPT_ENV, 1);
	return 0;
}

/*
 * Wait until the restore's connection comes from an allowed peer.  A stop
 * that comes while one already waits for us (from the guardian, or in the
 * backlog) still takes it, for the uffds it may hold (drain_queued()).
 */
static int accept_restore(struct lazy_daemon *d, int listen_fd)
{
	for (;;) {
		bool guarded = d->guardian.sock >= 0, self = !guarded;
		int fd = guarded ? d->guardian.sock : listen_fd;
		int ret = wait_fds(d, fd, guarded ? listen_fd : -1, -1, "the restore to connect");

		if (ret == 1) {		/* in the backlog: the guardian's to accept */
			ret = wait_fds(d, fd, -1, GUARDIAN_ACCEPT_MS, "the guardian to accept");
			if (ret == -ETIMEDOUT) {
				ret = 0;
				self = true;
			}
		}
		if (ret == -EINTR) {
			self = !guarded || !readable_now(fd);
			if (readable_now(self ? listen_fd : fd))
				take_connection(d, listen_fd, self);
		}
		if (ret)
			return ret;
		ret = take_connection(d, listen_fd, self);
		if (ret <= 0)
			return ret;
	}
}

/* A task whose lazy pages the daemon cannot (all) poison: said, once. */
static void say_unknown(int32_t pid, const char *why)
{
	pr_err("task %d: %s: the lazy pages it is not known to have cannot be poisoned and "
	       "may read as zeros", pid, why);
}

/*
 * The task of a uffd taken after the handshake failed: added with its
 * model as the handshake adds it (no page source, no prefetch: it is only
 * to be poisoned).
 */
static void adopt_queued(struct lazy_daemon *d, const struct lazy_tree *tree, int32_t pid,
			 int uffd, pid_t cred_pid)
{
	struct lazy_task *t = NULL;

	if (!pid_expected(tree, pid))
		say_unknown(pid, "its uffd came after the handshake failed, but it is not a "
			    "process of pstree.img");
	else if (pid_seen(d, pid))
		pr_warn("task %d: a second uffd came for it after the handshake failed: closed, "
			"the first one is poisoned", pid);
	else if (!(t = lazy_task_new(d, pid, lazy_host_pid(d, pid, cred_pid), uffd, NULL)))
		say_unknown(pid, "out of memory");
	else if (lazy_task_load_model(d, t))
		say_unknown(pid, "its images could not be read");	/* which, said above */
	else
		pr_info("task %d: got uffd %d after the handshake failed: to be poisoned", pid, uffd);
	if (!t)
		close(uffd);
}

struct adopt_arg {
	struct lazy_daemon *d;
	const struct lazy_tree *tree;
};

static void adopt_next(void *arg, int32_t pid)
{
	struct adopt_arg *a = arg;

	guardian_next(&a->d->guardian, pid);
}

static void adopt_one(void *arg, int32_t pid, int uffd, pid_t cred_pid)
{
	struct adopt_arg *a = arg;

	adopt_queued(a->d, a->tree, pid, uffd, cred_pid);
}

/*
 * The handshake failed after it began: take every uffd the restore already
 * sent (lazy_drain_records(), the guardian told of each as in the
 * handshake), up to one record per process of the tree.  unread: a pid
 * read whose uffd is the next message, or 0.  What cannot be read is left:
 * the caller fails anyway, and has said why.
 */
static void drain_queued(struct lazy_daemon *d, const struct lazy_tree *tree, int32_t unread)
{
	struct adopt_arg a = { d, tree };
	struct lazy_drain how = { .next = adopt_next, .take = adopt_one, .arg = &a };

	lazy_drain_records(d->conn_fd, tree->nr_pids, unread, &how);
}

/*
 * One record of the restore.  *unread: the pid read, if it failed before
 * that pid's uffd was read.  The record is taken off the connection only
 * once the guardian knows it (see the top).
 */
static int accept_one(struct lazy_daemon *d, const struct lazy_tree *tree, size_t record,
		      int32_t *unread)
{
	struct lazy_task *t;
	int32_t pid;
	pid_t cred_pid = 0, host_pid;
	int uffd = -1, ret;

	ret = peek_pid(d, d->conn_fd, &pid);
	if (ret)
		return ret;
	if (pid < 0) {
		/* widened: INT32_MIN has no negation in 32 bits */
		pr_info("task %lld is a zombie: nothing to serve", -(long long)pid);
		return consume_pid(d->conn_fd, pid);
	}
	if (!pid_expected(tree, pid) || pid_seen(d, pid)) {
		pr_err("the restore sent pid %d, which is not a process of pstree.img "
		       "or came twice", pid);
		return -EBADMSG;	/* still queued: the drain takes it */
	}
	guardian_next(&d->guardian, pid);
	ret = consume_pid(d->conn_fd, pid);
	if (ret)
		return ret;
	*unread = pid;		/* until its uffd is read */
	ret = wait_readable(d, d->conn_fd, "a userfaultfd from the restore") ?:
	      lazy_recv_uffd(d->conn_fd, pid, &uffd, &cred_pid, MSG_PEEK);
	if (ret)
		return ret;	/* a stop came first, say: it may come yet */
	lazy_test_stop(STOP_AFTER_RECV_ENV, record);
	host_pid = lazy_host_pid(d, pid, cred_pid);
	t = lazy_task_new(d, pid, host_pid, uffd, NULL);	/* the guardian's copy */
	if (!t) {
		say_unknown(pid, "out of memory");
		close(uffd);
		return -ENOMEM;
	}
	lazy_test_stop(STOP_AFTER_HOLD_ENV, record);
	lazy_consume_uffd(d->conn_fd);
	*unread = 0;
	ret = lazy_task_load_model(d, t);
	if (ret) {
		say_unknown(pid, "its images could not be read");
		return ret;
	}
	ret = lazy_task_attach_source(d, t) ?: lazy_prefetch_attach(d, t);
	if (ret)
		return ret;
	pr_info("task %d: got uffd %d", pid, uffd);
	return 0;
}

int lazy_accept_tasks(struct lazy_daemon *d, const struct lazy_tree *tree, int listen_fd)
{
	int ret = accept_restore(d, listen_fd);

	if (ret && d->conn_fd >= 0)	/* stopped with the restore connected */
		drain_queued(d, tree, 0);
	for (size_t i = 0; i < tree->nr_pids && !ret; i++) {
		int32_t unread = 0;

		lazy_test_stop(STOP_AT_ENV, i + 1);
		ret = accept_one(d, tree, i + 1, &unread);
		if (ret)
			drain_queued(d, tree, unread);
	}
	if (!ret)	/* every record read: the guardian's copy has nothing more to guard */
		guardian_conn_done(&d->guardian);
	return ret;
}

int lazy_read_restore_word(struct lazy_daemon *d)
{
	uint32_t word;
	ssize_t n = recv(d->conn_fd, &word, sizeof(word), MSG_DONTWAIT);

	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n < 0) {
		pr_perror("read from the restore");
		return -errno;
	}
	if (n == 0) {
		if (!d->restore_finished) {
			pr_err("restorer unexpectedly closed the connection before the restore finished");
			return -ECONNRESET;
		}
		/* normal end: the restore is done with us (out of epoll first: the
		 * guardian's copy keeps the file, and with it our watch, open) */
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->conn_fd, NULL);
		close(d->conn_fd);
		d->conn_fd = -1;
		return 0;
	}
	if (n != sizeof(word) || word != LAZY_RESTORE_FINISHED || d->restore_finished) {
		pr_err("unexpected data from the restore (%zd bytes, 0x%x)", n, n >= 4 ? word : 0);
		return -EBADMSG;
	}
	d->restore_finished = true;
	d->stats.finished_ns = mono_ns();
	d->stats.finished_cpu_ns = lazy_stats_cpu_ns();
	pr_info("restore finished");
	return 0;
}
