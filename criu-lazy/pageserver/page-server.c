/*
 * criu-lazy page-server --lazy-pages: serve the lazy pages of an image
 * directory over TCP to lazy-pages daemons (ours or CRIU's).
 *
 * Start-up loads the tree, each process's pagemap index and a mapping of
 * its pages file (ps-store.c), listens, and says so on --status-fd.  Then
 * one epoll loop serves any number of sessions at once (ps-conn.c): our
 * daemon opens two, one for faults and one for background transfers, so a
 * fault is never queued behind a bulk reply.  A session that sends a bad
 * request is dropped and the others go on.  The server exits 0 once a
 * session has ended with CLOSE and no other is open, or on SIGTERM.
 *
 * CRIU's other page-server mode, receiving a dump over the network
 * (OPEN2/ADD_F/CLOSE writing images), is not implemented.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "options.h"
#include "pageserver/ps-conn.h"
#include "pageserver/ps-net.h"
#include "pageserver/ps-store.h"

#define MAX_EVENTS 64

struct page_server {
	struct opts *o;
	int dirfd, listen_fd, epfd, signal_fd;
	char name[PS_NAME_MAX];		/* where it listens */
	struct ps_store store;
	struct ps_conn *conns;
	size_t nr_conns;
	unsigned int nr_closed;		/* sessions that ended with CLOSE */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int watch_fd(struct page_server *s, int fd, uint32_t events, void *tag)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		pr_perror("epoll add fd %d", fd);
		return -errno;
	}
	return 0;
}

static int setup_loop(struct page_server *s)
{
	sigset_t mask;

	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		pr_perror("epoll_create");
		return -errno;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->signal_fd < 0) {
		pr_perror("signalfd");
		return -errno;
	}
	return watch_fd(s, s->signal_fd, EPOLLIN, &s->signal_fd) ?:
	       watch_fd(s, s->listen_fd, EPOLLIN, &s->listen_fd);
}

/* Tell epoll what the session waits for now, if that changed. */
static void update_watch(struct page_server *s, struct ps_conn *c)
{
	struct epoll_event ev = { .events = ps_conn_events(c), .data.ptr = c };

	if (ev.events == c->watched)
		return;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev))
		pr_perror("%s: epoll mod", c->peer);
	c->watched = ev.events;
}

static void end_session(struct page_server *s, struct ps_conn *c)
{
	struct ps_conn **p;

	for (p = &s->conns; *p != c; p = &(*p)->next)
		;
	*p = c->next;
	s->nr_conns--;
	if (c->closed_ok)
		s->nr_closed++;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	ps_conn_free(c);
}

/* Take every waiting connection; returns how many, or a negative errno. */
static int accept_sessions(struct page_server *s)
{
	int nr = 0;

	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ps_conn *c;

		if (fd < 0) {
			if (errno == EAGAIN || errno == ECONNABORTED || errno == EINTR)
				return nr;
			pr_perror("accept on %s", s->name);
			return -errno;
		}
		ps_net_tune(fd);
		c = ps_conn_new(fd, &s->store);
		if (!c) {
			pr_err("out of memory for a new session: refusing it");
			close(fd);
			continue;
		}
		c->watched = ps_conn_events(c);
		if (watch_fd(s, fd, c->watched, c)) {
			ps_conn_free(c);
			continue;
		}
		c->next = s->conns;
		s->conns = c;
		s->nr_conns++;
		nr++;
		pr_info("%s: new session (%zu open)", c->peer, s->nr_conns);
	}
}

static int on_signal(struct page_server *s)
{
	struct signalfd_siginfo si;

	if (read(s->signal_fd, &si, sizeof(si)) != sizeof(si))
		return 0;
	pr_info("stopped by signal %u (%s) with %zu session(s) open", si.ssi_signo,
		strsignal(si.ssi_signo), s->nr_conns);
	return 1;
}

/* Milliseconds until the nearest session deadline, or -1. */
static int next_timeout(const struct page_server *s, uint64_t now)
{
	uint64_t nearest = 0;

	for (const struct ps_conn *c = s->conns; c; c = c->next)
		if (c->deadline_ns && (!nearest || c->deadline_ns < nearest))
			nearest = c->deadline_ns;
	if (!nearest)
		return -1;
	return nearest <= now ? 0 : (int)((nearest - now) / 1000000 + 1);
}

/* Done when some session said CLOSE and no other is open or waiting. */
static bool all_closed(struct page_server *s)
{
	if (!s->nr_closed || s->nr_conns)
		return false;
	return accept_sessions(s) <= 0;
}

static int run_loop(struct page_server *s)
{
	struct epoll_event evs[MAX_EVENTS];

	while (!all_closed(s)) {
		int n = epoll_wait(s->epfd, evs, MAX_EVENTS, next_timeout(s, now_ns()));
		uint64_t now = now_ns();
		struct ps_conn *c, *next;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			pr_perror("epoll_wait");
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			void *tag = evs[i].data.ptr;
			int ret;

			if (tag == &s->signal_fd) {
				if (on_signal(s))
					return 0;
			} else if (tag == &s->listen_fd) {
				ret = accept_sessions(s);
				if (ret < 0)
					return ret;
			} else {
				ps_conn_on_event(tag, evs[i].events, now);
			}
		}
		/* sessions are freed here only, after the batch that may name them */
		for (c = s->conns; c; c = next) {
			next = c->next;
			ps_conn_check_deadline(c, now);
			if (c->state == PS_CONN_DONE)
				end_session(s, c);
			else
				update_watch(s, c);
		}
	}
	pr_info("every session is closed: exiting");
	return 0;
}

static void signal_ready(struct opts *o)
{
	char zero = 0;

	if (o->status_fd < 0)
		return;
	if (write(o->status_fd, &zero, 1) != 1)
		pr_warn("cannot write to the status fd %d: %m", o->status_fd);
	close(o->status_fd);
}

static int check_options(struct opts *o)
{
	if (!o->lazy_pages) {
		pr_err("only the lazy page server is implemented (page-server --lazy-pages); "
		       "receiving a dump over the network is not supported");
		return -ENOTSUP;
	}
	if (!o->port) {
		pr_err("the page server needs a port (--port P)");
		return -EINVAL;
	}
	return 0;
}

int cr_page_server(struct opts *o)
{
	struct page_server s = { .o = o, .dirfd = -1, .listen_fd = -1, .epfd = -1,
				 .signal_fd = -1 };
	int ret;

	ret = check_options(o);
	if (ret)
		return ret;
	s.dirfd = open(o->images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s.dirfd < 0) {
		pr_perror("%s", o->images_dir);
		return -errno;
	}
	ret = ps_store_load(&s.store, s.dirfd);
	if (ret)
		goto out;
	ret = ps_net_listen(o->address, o->port, &s.listen_fd, s.name, sizeof(s.name));
	if (ret)
		goto out;
	ret = setup_loop(&s);
	if (ret)
		goto out;

	if (o->daemon_mode) {
		pid_t pid = fork();

		if (pid < 0) {
			pr_perror("fork to the background");
			ret = -errno;
			goto out;
		}
		if (pid > 0)
			_exit(0);
		setsid();
	}
	signal_ready(o);
	pr_info("serving the lazy pages of %zu task(s) on %s", s.store.nr_tasks, s.name);
	ret = run_loop(&s);
out:
	while (s.conns)
		end_session(&s, s.conns);
	ps_store_free(&s.store);
	if (s.signal_fd >= 0)
		close(s.signal_fd);
	if (s.epfd >= 0)
		close(s.epfd);
	if (s.listen_fd >= 0)
		close(s.listen_fd);
	close(s.dirfd);
	return ret;
}
