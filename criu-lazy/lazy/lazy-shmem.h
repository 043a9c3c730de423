/*
 * Lazy shared memory: the shmem objects of the tree (MAP_SHARED |
 * MAP_ANONYMOUS, /dev/zero, memfds) that the restore left empty for us,
 * and where each task maps them.  The design is in
 * Documentation/lazy-pages.md ("Shared memory"); lazy-shmem.c fills the
 * objects, lazy-shmem-load.c finds and opens them, lazy-shmem-layout.c
 * keeps the tasks' VMAs of them.
 */
#ifndef CRIU_LAZY_LAZY_SHMEM_H
#define CRIU_LAZY_LAZY_SHMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lazy_daemon;
struct lazy_task;
struct lazy_shm_obj;
struct MmEntry;

/*
 * A task's VMA of a lazy object: [start, end) maps the object from pgoff
 * (bytes); img_start is where start was at dump time (the working set names
 * pages by it).
 */
struct lazy_shm_vma {
	uint64_t start, end, pgoff, img_start;
	struct lazy_shm_obj *obj;
};

/* A task's VMAs of lazy objects, sorted, not overlapping. */
struct lazy_shm_map {
	struct lazy_shm_vma *vmas;
	size_t nr, cap;
};

/* lazy-shmem.c */
/* The task's registered shared VMAs (from mm and smaps), their objects opened on first sight. */
int lazy_shmem_load_task(struct lazy_daemon *d, struct lazy_task *t, const struct MmEntry *mm);
/* A fault at addr, read at t_ns: 1 if not in a lazy object, else 0 or a negative errno. */
int lazy_shmem_fault(struct lazy_daemon *d, struct lazy_task *t, uint64_t addr, uint64_t t_ns);
/*
 * A batch's shared memory from a page server: the recorded pages' windows
 * joined into one run of an object (pages [lo, hi)), asked for as one
 * request when the next window does not join it, or at the batch's end.
 */
struct lazy_shm_pf_run {
	struct lazy_shm_obj *o;		/* NULL: none yet */
	uint64_t lo, hi;
};
/*
 * The working set's page at dump-time address img of t, if it is a page of
 * lazy shared memory still to come: from the images its window is filled
 * now, from a page server it joins *run.  Returns the pages that costs the
 * batch (filled, or to be asked for), or a negative errno.
 */
int lazy_shmem_prefetch(struct lazy_daemon *d, struct lazy_task *t, uint64_t img,
			struct lazy_shm_pf_run *run);
/* Ask for what *run holds (lazy-shmem-prefetch.c): 0 or a negative errno. */
int lazy_shmem_prefetch_flush(struct lazy_daemon *d, struct lazy_task *t,
			      struct lazy_shm_pf_run *run);
/* Is dump-time page img of t lazy shared memory still to come? */
bool lazy_shmem_img_pending(const struct lazy_task *t, uint64_t img);
/* MADV_DONTNEED / MADV_REMOVE of [start, end): its pending pages are filled first. */
int lazy_shmem_remove(struct lazy_daemon *d, struct lazy_task *t, uint64_t start, uint64_t end);
/* Do the objects the task maps still have pages to come? */
bool lazy_shmem_task_done(const struct lazy_task *t);
bool lazy_shmem_background_wanted(struct lazy_daemon *d);
/* One background chunk of some object: 1 if one was filled, 0 if none is left. */
int lazy_shmem_background_step(struct lazy_daemon *d);
/* Pages that can no longer arrive: SIGBUS in the task (each task that maps
 * them gets its own); how many were poisoned. */
uint64_t lazy_shmem_poison_task(struct lazy_daemon *d, struct lazy_task *t);
/* At the end: what no live task could reach any more is dropped (counted). */
void lazy_shmem_finish(struct lazy_daemon *d);
void lazy_shmem_free_all(struct lazy_daemon *d);
/* The object's shmid (its pagemap-shmem image). */
uint64_t lazy_shmem_id(const struct lazy_shm_obj *o);
/* Pages of shared memory still to come (for messages). */
uint64_t lazy_shmem_pages_left(const struct lazy_daemon *d);
/* A task is freed: the faults of it waiting for shared memory are forgotten. */
void lazy_shmem_forget_task(struct lazy_daemon *d, const struct lazy_task *t);

/* lazy-shmem-removers.c */
/*
 * Must the task's threads be looked at before each read of its events (one
 * message a read then)?  A task mapping shared memory still to come, but
 * for a fork whose pid is lost (lazy-fork-pid.c).
 */
bool lazy_shmem_wants_look(const struct lazy_task *t);
/* Before one read of the task's events: note its threads in madvise
 * (DONTNEED, FREE or REMOVE) in t->removers (none known: a fork whose pid
 * is not), and those in fork(2) (lazy-fork-pid.c). */
void lazy_shmem_note_removers(struct lazy_daemon *d, struct lazy_task *t);
enum lazy_discard { LAZY_DISCARD_KEEP, LAZY_DISCARD_PUNCH, LAZY_DISCARD_UNKNOWN };
/* What a REMOVE event of [start, end) read after the last look is: the
 * noted threads covering it agree, or UNKNOWN. */
enum lazy_discard lazy_shmem_discard_kind(const struct lazy_task *t, uint64_t start, uint64_t end);

/* lazy-shmem-remote.c: shared memory from a page source that serves it */
/* Pages [off, off + nr_pages) of o arrived (a fault's if urgent). */
int lazy_shmem_deliver(struct lazy_daemon *d, struct lazy_shm_obj *o, uint64_t off,
		       uint64_t nr_pages, const void *data, bool urgent);
/*
 * A request of nr_pages of o is over (what came was delivered); pf: the
 * task whose working set asked for it (NULL: none, or freed since).
 */
void lazy_shmem_request_done(struct lazy_daemon *d, struct lazy_shm_obj *o, bool urgent,
			     struct lazy_task *pf, uint64_t nr_pages);

/* Are pages of shared memory in flight, or faults waiting for some? */
bool lazy_shmem_in_flight(const struct lazy_daemon *d);
/*
 * The watchdog's check (lazy-watchdog.c): a fault waiting for a page of
 * shared memory, or a page in flight, that no request of the page source
 * will bring, the grace long: 0, or -EIO (logged).
 */
int lazy_shmem_watchdog(struct lazy_daemon *d, uint64_t now);

/* lazy-shmem-layout.c */
struct lazy_shm_vma *lazy_shm_find(const struct lazy_shm_map *m, uint64_t addr);
/* The VMA that held dump-time address img (NULL: none, or moved away in part). */
struct lazy_shm_vma *lazy_shm_find_img(const struct lazy_shm_map *m, uint64_t img);
int lazy_shm_add(struct lazy_shm_map *m, const struct lazy_shm_vma *v);
/* munmap: [start, end) is no longer mapped */
int lazy_shm_cut(struct lazy_shm_map *m, uint64_t start, uint64_t end);
/* mremap moved [from, from+len) to [to, to+len) */
int lazy_shm_remap(struct lazy_shm_map *m, uint64_t from, uint64_t to, uint64_t len);
int lazy_shm_clone(struct lazy_shm_map *dst, const struct lazy_shm_map *src);
void lazy_shm_free(struct lazy_shm_map *m);
/* The first address >= addr in none of the task's VMAs of lazy objects. */
uint64_t lazy_shm_free_address(const struct lazy_shm_map *m, uint64_t addr);

#endif
