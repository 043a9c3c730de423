/*
 * Where lazy pages come from: the page source is the daemon's VFS.  Local
 * images answer at once (lazy_deliver() is called before request()
 * returns); a remote page server answers later, from its fd in the epoll
 * loop.  Either way the data reaches the task through lazy_deliver(),
 * and lazy_request_done() tells which part of a request is finished.
 */
#ifndef CRIU_LAZY_LAZY_PAGE_SOURCE_H
#define CRIU_LAZY_LAZY_PAGE_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "lazy/lazy-daemon.h"

struct page_source;

typedef int (*lazy_owed_fn)(void *arg, const struct lazy_task *t, const struct lazy_shm_obj *o,
			    uint64_t start, uint64_t end);

struct page_source_ops {
	const char *name;
	/* Prepare to serve t->img, a restored process's image. */
	int (*attach)(struct page_source *src, struct lazy_task *t);
	/*
	 * The same for the image of @pid before any task of it exists
	 * (lazy_preload_models()): *priv becomes t->img->src_priv at its
	 * handover, which then needs no attach; drop() frees one never
	 * taken.  NULL: attach only (a remote source asks its server then).
	 */
	int (*preload)(struct page_source *src, pid_t pid, void **priv);
	void (*drop)(struct page_source *src, void *priv);
	/* Fetch the pages of span for t (from t->img). */
	int (*request)(struct page_source *src, struct lazy_task *t, const struct lazy_span *span,
		       bool urgent);
	/* May t have one more background request outstanding? */
	bool (*can_prefetch)(struct page_source *src, struct lazy_task *t);
	/*
	 * Put the source's fds in the daemon's epoll set (d->epfd) with
	 * data.ptr = src.  The source changes their events itself (EPOLLOUT
	 * while requests wait to be sent) and may have several fds.  NULL for
	 * a synchronous source.
	 */
	int (*watch)(struct page_source *src);
	/* one of its fds is ready: send what waits, take what arrived */
	int (*on_ready)(struct page_source *src);
	/*
	 * Data read off its fds waits inside the source (TLS records already
	 * decrypted): on_ready must run again without waiting for an event,
	 * which would not come.  NULL: never.
	 */
	bool (*pending)(struct page_source *src);
	/*
	 * Task t is freed: forget it (what is still owed to it is dropped on
	 * arrival), and when no task reads its image any more
	 * (t->img->users == 0) free the image's state too.
	 */
	void (*release)(struct page_source *src, struct lazy_task *t);
	/* the daemon is done: close sessions, free state */
	int (*finish)(struct page_source *src);
	/*
	 * Only when src->shmem: fetch nr_pages of shared memory object o from
	 * offset off.  The data reaches lazy_shmem_deliver(), the end of the
	 * request lazy_shmem_request_done(), with pf: the task whose working
	 * set asks (NULL: none; a background request then).
	 */
	int (*request_shmem)(struct page_source *src, struct lazy_shm_obj *o, uint64_t off,
			     uint64_t nr_pages, bool urgent, struct lazy_task *pf);
	/*
	 * Serve the source alone (no uffd is read meanwhile) until done(arg)
	 * or timeout_ms have passed: 0, -ETIMEDOUT, or the source's error.
	 * NULL for a synchronous source.
	 */
	int (*sync)(struct page_source *src, bool (*done)(void *arg), void *arg, int timeout_ms);
	/*
	 * Between two turns of the loop, for the watchdog (lazy-watchdog.c):
	 * owed(arg, t, o, start, end) for each request out or queued on a
	 * connection still open, which will bring dump-time [start, end) of
	 * task t (o NULL), or offsets [start, end) of shared memory object o;
	 * stops at owed()'s error.  NULL: a synchronous source, which owes
	 * nothing once request() has returned.
	 */
	int (*list_owed)(struct page_source *src, lazy_owed_fn owed, void *arg);
	/*
	 * At a check of the watchdog: 0, or -EIO (logged) once replies have
	 * waited unread on one of its connections for the grace (the daemon
	 * stopped reading it).  NULL: nothing of it can wait unread.
	 */
	int (*watchdog)(struct page_source *src, uint64_t now);
};

struct page_source {
	const struct page_source_ops *ops;
	struct lazy_daemon *d;
	/* shared memory comes from it too (else from the images' pages files) */
	bool shmem;
};

struct page_source *page_source_local_new(struct lazy_daemon *d);
/* Connects to the page server at once (errors logged). */
int page_source_remote_new(struct lazy_daemon *d, const char *address, int port,
			   struct page_source **out);

#endif
