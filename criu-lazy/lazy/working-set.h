/*
 * The working set of a lazy restore: which lazy pages each process touched
 * (faults only, not pages delivered ahead of a touch), in first-touch
 * order, by dump-time address, with the time of the touch in ms since the
 * daemon started listening.  Written when the daemon exits to
 * DIR/working-set (format in Documentation/lazy-pages.md), merged with
 * what an earlier restore of the same images recorded.
 */
#ifndef CRIU_LAZY_WORKING_SET_H
#define CRIU_LAZY_WORKING_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WORKING_SET_NAME	"working-set"
#define WORKING_SET_MAGIC	0x54455357u	/* "WSET" little-endian */
#define WORKING_SET_VERSION	1u

struct ws_entry {
	uint64_t img;		/* dump-time page address */
	uint32_t ms;		/* first touch, ms since the daemon started */
};

struct ws_proc {
	pid_t pid;		/* in the images */
	struct ws_entry *e;
	size_t nr, cap;
	uint64_t *set;		/* open addressing over img + 1 (0 is empty) */
	size_t set_cap;
};

struct working_set {
	bool on;		/* recording (off: --no-working-set, or out of memory) */
	uint32_t restores;	/* restores merged into it */
	uint64_t start_ns;
	uint64_t identity;	/* of the images (ws_open) */
	struct working_set *prior;	/* an earlier restore's record of these images, or NULL */
	struct ws_proc *procs;
	size_t nr_procs, cap_procs;
};

void ws_init(struct working_set *ws, bool on, uint64_t start_ns);
/*
 * The identity of the images (pids: their processes) and the record an
 * earlier restore of them left in DIR/working-set, the prefetch's list.  A
 * file of other images, of another version or damaged is ignored with one
 * warning and replaced at the end.  Unreadable images turn recording off.
 */
void ws_open(struct working_set *ws, int dirfd, const pid_t *pids, size_t nr_pids);
/* The earlier record of process pid, or NULL. */
const struct ws_proc *ws_prior(const struct working_set *ws, pid_t pid);
bool ws_proc_has(const struct ws_proc *p, uint64_t img);
/* Process pid touched dump-time page img at now_ns; true if it is new. */
bool ws_touch(struct working_set *ws, pid_t pid, uint64_t img, uint64_t now_ns);
/*
 * Merge with the earlier record (union; CRIU_LAZY_WS_MERGE=newest keeps
 * only this restore's, for the benchmark) and replace the file atomically.
 * A failure is one warning: the restore itself went well.
 */
void ws_write(struct working_set *ws, int dirfd);
void ws_free(struct working_set *ws);

#endif
