/*
 * The lazy-pages daemon's state: one struct passed down, no globals.
 *
 * Each restored process is a lazy_task with its own userfaultfd and model.
 * A task forked after restore gets a task of its own (its uffd comes with
 * the FORK event) whose pages still come from the image of the process it
 * descends from: the lazy_image they share, which also holds the page
 * source's state.  A task that is closed (exited, or has all its pages) is
 * freed at the end of the loop's turn, and its image with the last task
 * that reads it: the daemon's memory follows the live tasks.
 */
#ifndef CRIU_LAZY_LAZY_DAEMON_H
#define CRIU_LAZY_LAZY_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lazy/guardian.h"
#include "lazy/lazy-model.h"
#include "lazy/lazy-shmem.h"
#include "lazy/lazy-stats.h"
#include "lazy/working-set.h"
#include "options.h"

struct page_source;

/*
 * lazy-watchdog.c: every page in flight, every fault waiting, has a
 * request of the page source behind it; one that has had none for the
 * grace is a daemon bug, which fails the daemon (its pages poisoned).
 */
struct lazy_owed;

struct lazy_watchdog {
	uint64_t grace_ns;		/* CRIU_LAZY_WATCHDOG_MS, 2 s by default */
	uint64_t last_ns;		/* the last check */
	struct lazy_owed *owed;		/* during a check: what the source owes, sorted */
	size_t nr_owed, cap_owed;
	uint64_t drop_request;		/* test only: CRIU_LAZY_TEST_DROP_REQUEST (0: none) */
	uint64_t nr_requests;		/* of the driver so far (for drop_request) */
	uint64_t drop_shmem;		/* test only: CRIU_LAZY_TEST_DROP_SHMEM_REQUEST */
	uint64_t nr_shmem_requests;	/* of shared memory from a page server so far */
};

/* A span requested from the page source, not yet copied into the task. */
struct lazy_req {
	struct lazy_span span;
	uint64_t t_ns;		/* when the fault was read (urgent requests) */
	bool urgent;
	bool prefetch;		/* the working set's install (lazy/prefetch.c) */
	uint64_t orphan_ns;	/* first seen with nothing behind it (lazy-watchdog.c) */
};

/* The image of one dumped process, shared with the tasks forked from it. */
struct lazy_image {
	pid_t pid;
	long stats_idx;			/* its share of the statistics */
	unsigned int users;		/* open tasks that read it */
	void *src_priv;			/* page source state */
};

/* A thread seen in madvise(2) discarding [start, end) (lazy-shmem-removers.c). */
struct lazy_remover {
	uint64_t start, end;
	bool punch;			/* MADV_REMOVE; else DONTNEED or FREE */
};

/*
 * lazy-fork-pid.c: a thread seen in fork(2) at a look at a process, the
 * only one, and its children then (before its FORK event was read).
 */
struct lazy_forker {
	pid_t tid;			/* 0: none, or more than one, or unsure */
	pid_t *kids;
	size_t nr_kids;
	unsigned long long since;	/* the look, in /proc's start time ticks */
};

enum lazy_fork_pid { FORK_PID_NONE, FORK_PID_PENDING, FORK_PID_FOUND, FORK_PID_LOST };

/* A process's model built before its handover (lazy_preload_models()). */
struct lazy_preload {
	pid_t pid;
	int ret;			/* of the load: its handover fails with it */
	bool taken;
	struct MmEntry *mm;
	struct lazy_model model;
	/* the page source's state of its image (page_source_ops.preload), if
	 * that went well: a failure is met again, and said, at the handover */
	void *src_priv;
};

struct lazy_task {
	pid_t pid;			/* the image's pid (the same for forks) */
	pid_t host_pid;			/* that process's pid in our namespace */
	int uffd;			/* -1 once closed */
	uint32_t guardian_id;		/* its copy in the guardian (0: none) */
	bool gone;			/* exited, or everything delivered */
	bool forked;			/* a child forked after the restore */
	/*
	 * Its own process's pid here, whose threads the look reads: host_pid,
	 * or a fork's once found (lazy-fork-pid.c), 0 until then or if lost.
	 * A fork: fork_ppid its parent's, fork_from the thread of it that
	 * forked it and that thread's children before the fork.
	 */
	pid_t proc_pid;
	enum lazy_fork_pid fork_pid;
	pid_t fork_ppid;
	struct lazy_forker fork_from;
	struct lazy_forker forking;	/* its own thread in fork(2) at the last look */
	unsigned int nr_forkers;	/* its threads seen in fork(2) then */
	bool forkers_unsure;		/* one in clone3(2), or with CLONE_PARENT */
	struct lazy_model model;
	struct lazy_shm_map shm;	/* its VMAs of lazy shared memory */
	/* its threads seen in madvise(DONTNEED, FREE or REMOVE) before the
	 * last read of its events (lazy-shmem-removers.c); removers_known:
	 * that look saw every thread */
	struct lazy_remover *removers;
	size_t nr_removers, cap_removers;
	bool removers_known;
	uint64_t nr_lazy_pages;		/* at start, for the statistics */

	struct lazy_req *inflight;
	size_t nr_inflight, cap_inflight;

	uint64_t *deferred;		/* faults to serve again (EAGAIN) */
	size_t nr_deferred, cap_deferred;

	/* dump-time pages that faulting threads wait for while in flight */
	uint64_t *waiting;
	size_t nr_waiting, cap_waiting;
	uint64_t stray_ns;		/* a waiter first seen outside every copy in flight */

	struct lazy_image *img;
	struct lazy_prefetch *pf;	/* its working set still to install, or NULL */
	uint64_t last_fault;		/* run-time page of its last fault (lazy-events.c) */
	uint64_t xfer_pages;		/* background chunk size, grows */
	uint64_t bg_pass;		/* its share of background delivery so far
					 * (lazy-deliver.c: lowest goes next) */
	uint64_t bg_tried;		/* the background step that last looked at it */
	struct lazy_task *next;
};

struct lazy_daemon {
	struct opts *o;
	int dirfd;			/* images dir */
	int epfd;
	int conn_fd;			/* the restore's connection, -1 once closed */
	pid_t restore_pid;		/* its peer (SO_PEERCRED), 0 if unknown */
	unsigned long long start_ticks;	/* ours (lazy_start_ticks()), once */
	int signal_fd;
	bool restore_finished;
	bool failed;
	uint64_t last_fault_ns;		/* the last fault read (background chunks stay small) */

	struct lazy_task *tasks;
	struct lazy_preload *pre;	/* the tree's models, built before the handovers */
	size_t nr_pre;
	uint64_t bg_pass;		/* the pass of the last background chunk */
	uint64_t bg_step;		/* background steps so far */
	struct lazy_shm_obj *shm_objs;	/* lazy shared memory (lazy-shmem.c) */
	struct lazy_task *pf_next;	/* round robin of prefetch */
	struct page_source *src;
	struct lazy_stats stats;
	struct working_set ws;		/* the pages the tasks touched */
	struct lazy_guardian guardian;	/* holds a copy of every uffd (guardian.h) */
	struct lazy_watchdog watchdog;	/* nothing in flight is left behind */
	size_t forks_read;		/* FORK events read (CRIU_LAZY_TEST_STOP_AFTER_FORK_READ) */
};

#define LAZY_FAULT_WINDOW_PAGES	16	/* 64 KiB aligned fault-around */
#define LAZY_XFER_MIN_PAGES	16	/* background chunk: 64 KiB ... */
#define LAZY_XFER_MAX_PAGES	1024	/* ... growing to 4 MiB, */
#define LAZY_XFER_BUSY_PAGES	64	/* but 256 KiB at most ... */
#define LAZY_FAULTS_ACTIVE_NS	(100 * 1000000ULL)	/* ... within 100 ms of a fault */

/* lazy-task.c */
/*
 * A task reading img, or (img NULL) a restored process with a new image;
 * host_pid: its pid here (the guardian's, host-pid.c), or for a fork its
 * parent's.
 */
struct lazy_task *lazy_task_new(struct lazy_daemon *d, pid_t pid, pid_t host_pid, int uffd,
				struct lazy_image *img);
/*
 * The model of the image's process: preloaded, or read now; then checked
 * in the task and its shared memory's views read (through host_pid).
 */
int lazy_task_load_model(struct lazy_daemon *d, struct lazy_task *t);
/* Build every listed process's model ahead (best effort: none is fatal). */
void lazy_preload_models(struct lazy_daemon *d, const pid_t *pids, size_t nr);
void lazy_preload_free(struct lazy_daemon *d);
int lazy_task_attach_source(struct lazy_daemon *d, struct lazy_task *t);
/* Closes its uffd and frees its model now; the rest goes in lazy_task_reap(). */
void lazy_task_close(struct lazy_daemon *d, struct lazy_task *t, const char *why);
/* Free the closed tasks (nothing may hold one across this call). */
void lazy_task_reap(struct lazy_daemon *d);
void lazy_task_free_all(struct lazy_daemon *d);
bool lazy_task_done(const struct lazy_task *t);
/* An address in no region and nothing in flight: probes may touch it. */
uint64_t lazy_task_probe_address(const struct lazy_task *t);

/* lazy-deliver.c: requests to the page source and copies into the task */
int lazy_request(struct lazy_daemon *d, struct lazy_task *t, const struct lazy_span *span,
		 bool urgent, uint64_t t_ns);
/* A span of the working set (background priority, counted as prefetched). */
int lazy_request_prefetch(struct lazy_daemon *d, struct lazy_task *t, const struct lazy_span *span);
/* Is a prefetch copy of run-time page addr in flight?  (lazy_wait_inflight() found it) */
bool lazy_inflight_is_prefetch(const struct lazy_task *t, uint64_t addr);
int lazy_deliver(struct lazy_daemon *d, struct lazy_task *t, uint64_t img_start,
		 uint64_t nr_pages, const void *data);
int lazy_request_done(struct lazy_daemon *d, struct lazy_task *t, uint64_t img_start,
		      uint64_t nr_pages);
int lazy_background_step(struct lazy_daemon *d);
/* events move or cut what is in flight (run-time addresses) */
int lazy_inflight_drop(struct lazy_task *t, uint64_t start, uint64_t end, uint64_t *dropped);
int lazy_inflight_remap(struct lazy_task *t, uint64_t from, uint64_t to, uint64_t len);

/*
 * A thread faulted on a page that is in flight: it waits for its copy (0,
 * with the page's dump-time address in *img), or 1 if none is.
 */
int lazy_wait_inflight(struct lazy_task *t, uint64_t addr, uint64_t *img);

/*
 * lazy-fork-pid.c: the pid of a process forked after the restore.  A look
 * at a process's threads (lazy_fork_look_start(), _thread() for each with
 * its system call, _end()) notes the one in fork(2); lazy_fork_begin() at
 * its FORK gives the child what was noted; lazy_fork_find() sets the
 * child's proc_pid once it is known for sure (must_be_there: the child
 * has messages queued, so it is attached: not found then, it is lost).
 */
void lazy_fork_look_start(struct lazy_task *t);
void lazy_fork_look_thread(struct lazy_task *t, pid_t tid, long nr, unsigned long long a0);
void lazy_fork_look_end(struct lazy_daemon *d, struct lazy_task *t);
void lazy_fork_begin(struct lazy_daemon *d, struct lazy_task *parent, struct lazy_task *child);
void lazy_fork_find(struct lazy_daemon *d, struct lazy_task *t, bool must_be_there);
void lazy_fork_free(struct lazy_task *t);

/* lazy-events.c: what comes out of a uffd */
int lazy_defer_fault(struct lazy_task *t, uint64_t addr);
int lazy_handle_uffd(struct lazy_daemon *d, struct lazy_task *t);
int lazy_retry_deferred(struct lazy_daemon *d, struct lazy_task *t);
/* events only: faults are deferred (when the daemon cannot serve them now) */
int lazy_read_events(struct lazy_daemon *d, struct lazy_task *t);

/*
 * Test only: when the environment's env is n (a count from 1), we stop
 * ourselves (SIGSTOP) there, for a test to SIGKILL us
 * (lazy-handshake.c's hooks, and CRIU_LAZY_TEST_STOP_AFTER_FORK_READ).
 */
void lazy_test_stop(const char *env, size_t n);


/*
 * host-pid.c: the pid here of the process the restore names pid, whose
 * uffd's message came with credentials naming cred_pid (0: none); -ESRCH
 * if they name another process (logged).
 */
pid_t lazy_host_pid(const struct lazy_daemon *d, pid_t pid, pid_t cred_pid);
/*
 * The same for whoever holds the images directory (dirfd) and knows the
 * restore's pid (0: unknown) and the daemon's start (lazy_start_ticks()):
 * the guardian, for the records it takes at its takeover.
 */
pid_t lazy_host_pid_in(int dirfd, pid_t restore_pid, unsigned long long since, pid_t pid,
		       pid_t cred_pid);
/* When pid started (/proc/PID/stat field 22), 0 if unreadable. */
unsigned long long lazy_start_ticks(pid_t pid);
/* Once, before the handovers: what lazy_host_pid() needs of ourselves. */
void lazy_host_pid_prepare(struct lazy_daemon *d);
/* The innermost pid (its own namespace's) of the process here, -1 if gone. */
pid_t lazy_ns_pid(pid_t here);

/* lazy-watchdog.c */
void lazy_watchdog_init(struct lazy_daemon *d);
/* Is anything in flight or waited for (the loop must then come by now and then)? */
bool lazy_watchdog_wanted(const struct lazy_daemon *d);
/*
 * *since: when this was first seen with nothing behind it (0: it has
 * something); orphan: it has nothing now.  True once that is the grace ago.
 */
bool lazy_watchdog_overdue(const struct lazy_daemon *d, uint64_t *since, bool orphan,
			   uint64_t now);
/*
 * During a check: will a request of the source bring dump-time address addr
 * of task key, or offset addr of shared memory object key?
 */
bool lazy_watchdog_owes(const struct lazy_daemon *d, const void *key, uint64_t addr);
/* At most every tick: 0, or -EIO once something was left with nothing behind it (logged). */
int lazy_watchdog_tick(struct lazy_daemon *d);
/*
 * Test only (CRIU_LAZY_TEST_DROP_REQUEST=N): is this request, the driver's
 * Nth, the one to forget?  Its span stays in flight with nothing behind it.
 */
bool lazy_watchdog_test_drop(struct lazy_daemon *d, const struct lazy_task *t,
			     const struct lazy_span *span);
/*
 * Test only (CRIU_LAZY_TEST_DROP_SHMEM_REQUEST=N): the same for the Nth
 * request of shared memory from a page server, nr_pages of object shmid
 * from offset off: its pages stay in flight with nothing behind them.
 */
bool lazy_watchdog_test_drop_shmem(struct lazy_daemon *d, uint64_t shmid, uint64_t off,
				   uint64_t nr_pages);

/*
 * lazy-poison.c: what the tasks get when pages can no longer arrive; the
 * number of tasks that had pages poisoned.
 */
unsigned int lazy_poison_all(struct lazy_daemon *d);
/* After a poison's UFFD_RETRY: the events read, a pause; -EAGAIN past the bound. */
int lazy_poison_await_events(struct lazy_daemon *d, struct lazy_task *t, int *tries);


#endif
