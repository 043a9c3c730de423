/*
 * What every daemon of ours (lazy-pages, page-server) needs around its
 * epoll loop: the stop signals as an fd, and fds watched with a tag.
 */
#ifndef CRIU_LAZY_COMMON_EVLOOP_H
#define CRIU_LAZY_COMMON_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Block SIGTERM, SIGINT and SIGHUP and return a non-blocking signalfd for
 * them, so a stop request is an event like any other (from the start of
 * the daemon, not only once its loop runs).  SIGPIPE is ignored: a peer
 * that goes away is an error return, not a death.
 */
int evloop_stop_signals(int *signal_fd);

/* The stop signal that arrived (its number), or 0 if none is pending. */
int evloop_read_signal(int signal_fd);

/* epoll_ctl ADD with data.ptr = tag. */
int evloop_watch(int epfd, int fd, uint32_t events, void *tag);

/* Readiness for whoever started us: one zero byte on --status-fd (CRIU's
 * convention), then the fd is closed.  Nothing to do for fd < 0. */
void evloop_signal_ready(int status_fd);

/*
 * A daemon that listens now: with --daemon (-d) go to the background (the
 * parent exits 0, the child leads a new session), then signal readiness.
 */
int evloop_daemon_ready(bool background, int status_fd);

#endif
