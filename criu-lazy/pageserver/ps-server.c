/*
 * The lazy page server's loop (see ps-server.h).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/evloop.h"
#include "common/log.h"
#include "common/mono-time.h"
#include "common/tls.h"
#include "pageserver/ps-conn.h"
#include "pageserver/ps-server.h"

#define MAX_EVENTS 64
/* Concurrent sessions: a lazy-pages daemon holds two, so this serves several restores at once. */
#define MAX_SESSIONS 16

int ps_server_listen(struct ps_server *s, const char *address, int port)
{
	memset(s, 0, sizeof(*s));
	s->listen_fd = s->epfd = s->signal_fd = -1;
	return ps_net_listen(address, port, &s->listen_fd, s->name, sizeof(s->name));
}

int ps_server_setup(struct ps_server *s, const struct ps_store *store, bool strict)
{
	int ret;

	s->store = store;
	s->strict = strict;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		pr_perror("epoll_create");
		return -errno;
	}
	ret = evloop_stop_signals(&s->signal_fd);
	if (ret)
		return ret;
	return evloop_watch(s->epfd, s->signal_fd, EPOLLIN, &s->signal_fd) ?:
	       evloop_watch(s->epfd, s->listen_fd, EPOLLIN, &s->listen_fd);
}


/* Tell epoll what the session waits for now, if that changed. */
static void update_watch(struct ps_server *s, struct ps_conn *c)
{
	struct epoll_event ev = { .events = ps_conn_events(c), .data.ptr = c };

	if (ev.events == c->watched)
		return;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->sk.fd, &ev))
		pr_perror("%s: epoll mod", c->peer);
	c->watched = ev.events;
}

/*
 * Count how the session ended; lenient: say so, strict: note why the run
 * fails.  Returns true if the run must stop.
 */
static bool judge_session(struct ps_server *s, struct ps_conn *c)
{
	s->nr_gets += c->nr_gets;
	s->nr_pages += c->nr_pages;
	if (c->end == PS_END_REFUSED) {
		/* an intruder or a misconfigured client: the run goes on */
		s->nr_refused++;
		pr_warn("%s: refused: %s", c->peer, c->why);
		return false;
	}
	if (c->end == PS_END_CLOSED) {
		s->nr_closed++;
		return false;
	}
	if (s->strict) {
		snprintf(s->why, sizeof(s->why), "%s%s%s%s", c->peer,
			 c->end == PS_END_EOF ? " " : ": ", c->why,
			 c->end == PS_END_DROPPED ? ": its session was dropped" : "");
		return true;
	}
	if (c->end == PS_END_DROPPED)
		pr_err("%s: %s: dropping the connection", c->peer, c->why);
	else if (c->end == PS_END_ERROR)
		pr_warn("%s: %s", c->peer, c->why);
	return false;
}

static void end_session(struct ps_server *s, struct ps_conn *c)
{
	struct ps_conn **p;

	for (p = &s->conns; *p != c; p = &(*p)->next)
		;
	*p = c->next;
	s->nr_conns--;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->sk.fd, NULL);
	ps_conn_free(c);
}

/* A session is counted once it is one: at once, or with --tls once authenticated. */
static void count_session(struct ps_server *s, struct ps_conn *c)
{
	if (c->counted || c->state == PS_CONN_HANDSHAKE || c->end == PS_END_REFUSED)
		return;
	c->counted = true;
	s->nr_accepted++;
	pr_info("%s: new session (%zu open)", c->peer, s->nr_conns);
}

/* --tls: the session authenticates its client first. */
static int start_tls(struct ps_server *s, struct ps_conn *c)
{
	struct tls_conn *t;
	int ret = tls_conn_new(s->tls, c->sk.fd, true, NULL, &t);

	if (ret) {
		pr_err("%s: out of memory for a TLS session: refusing it", c->peer);
		return ret;
	}
	ps_conn_start_tls(c, t, mono_ns());
	return 0;
}

/* Take every waiting connection; returns how many, or a negative errno. */
static int accept_sessions(struct ps_server *s)
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
		if (s->nr_conns >= MAX_SESSIONS) {
			char peer[PS_NAME_MAX];

			ps_net_peer_name(fd, peer, sizeof(peer));
			pr_warn("%s: refused: %d sessions are open already (the limit)", peer,
				MAX_SESSIONS);
			close(fd);
			continue;
		}
		ps_net_tune(fd);
		c = ps_conn_new(fd, s->store);
		if (!c) {
			pr_err("out of memory for a new session: refusing it");
			close(fd);
			continue;
		}
		if (s->tls && start_tls(s, c)) {
			ps_conn_free(c);
			continue;
		}
		c->watched = ps_conn_events(c);
		if (evloop_watch(s->epfd, fd, c->watched, c)) {
			ps_conn_free(c);
			continue;
		}
		c->next = s->conns;
		s->conns = c;
		s->nr_conns++;
		nr++;
		if (s->tls)
			pr_info("%s: new connection: TLS handshake", c->peer);
		count_session(s, c);
	}
}

static bool on_signal(struct ps_server *s)
{
	int sig = evloop_read_signal(s->signal_fd);

	if (!sig)
		return false;
	s->stop_signal = sig;
	pr_info("stopped by signal %d (%s) with %zu session(s) open", sig, strsignal(sig),
		s->nr_conns);
	return true;
}

/* A TLS session holds requests already read, and waits to read more. */
static bool has_pending(const struct ps_conn *c)
{
	return c->state != PS_CONN_DONE && (ps_conn_events(c) & EPOLLIN) &&
	       ps_sock_pending(&c->sk);
}

/* Milliseconds until the nearest session deadline, or -1; 0 if data waits. */
static int next_timeout(const struct ps_server *s, uint64_t now)
{
	uint64_t nearest = 0;

	for (const struct ps_conn *c = s->conns; c; c = c->next)
		if (has_pending(c))
			return 0;
	for (const struct ps_conn *c = s->conns; c; c = c->next)
		if (c->deadline_ns && (!nearest || c->deadline_ns < nearest))
			nearest = c->deadline_ns;
	if (!nearest)
		return -1;
	return nearest <= now ? 0 : (int)((nearest - now) / 1000000 + 1);
}

/* Done when some session said CLOSE and no other is open or waiting. */
static bool all_closed(struct ps_server *s)
{
	if (!s->nr_closed || s->nr_conns)
		return false;
	return accept_sessions(s) <= 0;
}

int ps_server_run(struct ps_server *s)
{
	struct epoll_event evs[MAX_EVENTS];

	while (!all_closed(s)) {
		int n = epoll_wait(s->epfd, evs, MAX_EVENTS, next_timeout(s, mono_ns()));
		uint64_t now = mono_ns();
		struct ps_conn *c, *next;
		bool failed = false;

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
					return -EINTR;
			} else if (tag == &s->listen_fd) {
				ret = accept_sessions(s);
				if (ret < 0)
					return ret;
			} else {
				ps_conn_on_event(tag, evs[i].events, now);
			}
		}
		/* what TLS decrypted already, epoll will not announce */
		for (c = s->conns; c; c = c->next)
			if (has_pending(c))
				ps_conn_on_event(c, EPOLLIN, now);
		/* sessions are freed here only, after the batch that may name them */
		for (c = s->conns; c; c = next) {
			next = c->next;
			ps_conn_check_deadline(c, now);
			count_session(s, c);
			if (c->state == PS_CONN_DONE) {
				failed |= judge_session(s, c);
				end_session(s, c);
			} else {
				update_watch(s, c);
			}
		}
		if (failed)
			return -ECONNABORTED;
	}
	pr_info("every session is closed: %llu GETs, %llu pages served",
		(unsigned long long)s->nr_gets, (unsigned long long)s->nr_pages);
	return 0;
}

void ps_server_served(const struct ps_server *s, uint64_t *gets, uint64_t *pages)
{
	*gets = s->nr_gets;
	*pages = s->nr_pages;
	for (const struct ps_conn *c = s->conns; c; c = c->next) {
		*gets += c->nr_gets;
		*pages += c->nr_pages;
	}
}

void ps_server_fini(struct ps_server *s)
{
	while (s->conns)
		end_session(s, s->conns);
	if (s->signal_fd >= 0)
		close(s->signal_fd);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	s->signal_fd = s->epfd = s->listen_fd = -1;
	tls_creds_free(s->tls);
	s->tls = NULL;
}
