/*
 * Coming back to a page server that went away (lazy-pages
 * --page-server-reconnect SECONDS): Documentation/lazy-pages.md.
 *
 * A connection lost with pages still to deliver is opened again, every
 * RC_RETRY_MS, until SECONDS have passed or a stop signal arrives.  A
 * connection lost again with requests out and no reply since its
 * reconnect, within SECONDS of it, has the same time left: a server that
 * accepts and drops the session at a request it cannot serve uses it up,
 * and the daemon then fails.  Any other loss has SECONDS anew.  The
 * driver's requests make this safe: a GET is only ever for pages still in
 * flight, a slice is copied only once whole, so whatever the lost
 * connection owed is simply asked for again on the new one.
 *
 * What it cannot know is whether the server that answers is the same
 * source.  A restarted `page-server` on the same images is; anything else
 * (another dump, other images) would hand the tasks other memory.  So the
 * daemon keeps fingerprints of a few pages it received (task, address,
 * FNV-1a 64 of the data) and asks the new server for them again before any
 * request goes out: one that differs, or a server that does not have them,
 * fails the daemon (its tasks get poisoned pages, never wrong ones).
 */
#ifndef CRIU_LAZY_LAZY_REMOTE_RECONNECT_H
#define CRIU_LAZY_LAZY_REMOTE_RECONNECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lazy/remote-conn.h"

#define RC_FINGERPRINTS	8
#define RC_RETRY_MS	200

struct rc_fingerprints {
	unsigned int nr;
	struct {
		uint64_t id;		/* image pid, or shmid */
		bool shmem;		/* a page of shared memory (GET_SHMEM) */
		uint64_t vaddr;		/* dump-time address, or offset */
		uint64_t hash;		/* FNV-1a 64 of the page */
	} fp[RC_FINGERPRINTS];
};

/* A page received: kept as a fingerprint while there is room (not a zero page). */
void rc_fingerprint_note(struct rc_fingerprints *f, pid_t pid, uint64_t vaddr,
			 const void *page);
/* The same for a page of shared memory object shmid at offset off. */
void rc_fingerprint_note_shmem(struct rc_fingerprints *f, uint64_t shmid, uint64_t off,
			       const void *page);

/*
 * How to open the connection again: 0 or a negative errno (tried again),
 * with why filled when it knows more than the errno says.
 */
typedef int (*rc_open_fn)(void *arg, struct rc_conn *c, const char *role, char *why,
			  size_t len);

/*
 * Open c (closed) again before end_ns, stopping early when signal_fd
 * becomes readable, and check the fingerprints on it.  wait_first: c was
 * lost right after its last reconnect (wait RC_RETRY_MS before trying).
 * 0: c is open and checked.  Otherwise logged, naming the left pages still
 * to deliver: -ETIMEDOUT (no server that answers in time), -EINTR (a stop
 * signal), -EIO (the server has other pages), -ENOMEM.
 */
int rc_reconnect(struct rc_conn *c, const char *role, uint64_t end_ns, bool wait_first,
		 int signal_fd, uint64_t left, const struct rc_fingerprints *f, rc_open_fn open,
		 void *arg);

#endif
