/*
 * Inside the page-server source (source-remote.c): what its shared memory
 * part (source-remote-shmem.c) and its watchdog's (source-remote-watchdog.c)
 * share with it.
 */
#ifndef CRIU_LAZY_LAZY_SOURCE_REMOTE_INT_H
#define CRIU_LAZY_LAZY_SOURCE_REMOTE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "lazy/page-source.h"
#include "lazy/remote-conn.h"
#include "lazy/remote-reconnect.h"
#include "pageserver/ps-net.h"

struct remote_source {
	struct page_source src;		/* first: what the driver holds */
	char peer[PS_NAME_MAX];		/* address:port, for every message */
	const char *address;		/* to connect again */
	int port;
	struct rc_fingerprints fingerprints;	/* pages received, to know the server again */
	struct rc_conn fault, bg;	/* bg.fd < 0: one shared connection */
	struct tls_creds *tls;		/* --tls: both connections authenticate */
	bool shared;
	bool broken;			/* a connection failed: no CLOSE at the end */
	bool finishing;			/* replies are drained, not delivered */
	uint64_t last_fault_ns;
};

static inline struct remote_source *to_remote(struct page_source *src)
{
	return (struct remote_source *)src;
}

/* source-remote.c */
/* Send the next GET of a job on its connection. */
int send_next(struct remote_source *rs, struct rc_get *job, uint64_t vaddr, uint64_t nr_pages);
/* A background job is done: the next one goes out now. */
int refill_background(struct remote_source *rs);
int remote_on_ready(struct page_source *src);
bool remote_pending(struct page_source *src);
int remote_finish(struct page_source *src);

/* source-remote-watchdog.c: what the watchdog asks of the source */
int remote_list_owed(struct page_source *src, lazy_owed_fn owed, void *arg);
int remote_watchdog(struct page_source *src, uint64_t now);

/* source-remote-shmem.c */
/* A shared memory job: the next GET from offset from, or its end. */
int shm_job_next(struct remote_source *rs, struct rc_get *job, uint64_t from);
int remote_request_shmem(struct page_source *src, struct lazy_shm_obj *o, uint64_t off,
			 uint64_t nr_pages, bool urgent, struct lazy_task *pf);
int remote_sync(struct page_source *src, bool (*done)(void *arg), void *arg, int timeout_ms);
/* Ask the server on the background connection whether it serves shared memory. */
int ask_features(struct remote_source *rs);

#endif
