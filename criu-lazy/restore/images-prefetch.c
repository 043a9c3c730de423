/*
 * Stage 2 reads some ten images per process, and protobuf-c takes 6 to 9 us
 * to unpack a core image (a few hundred repeated words of FPU state, written
 * one tag per word as CRIU does): 0.4 ms for the bench tree's 20 threads,
 * while the other CPU idles.  So a worker thread reads them as well, from
 * the end of the list, while the restore process reads from its start, in
 * the order it needs them: each image is read once, by whichever of the two
 * comes to it first, and they meet about halfway.
 *
 * Each item is claimed with a compare-and-swap: FREE -> BUSY by the worker,
 * FREE -> MINE by the restore process, which reads a claimed one itself.
 * One the worker is still reading is waited for (a futex on its state), but
 * only briefly: on a busy machine the worker, pinned to another CPU, may
 * wait there for milliseconds before it runs again (a restore's stage 2
 * took 3 to 290 ms so, with other work on that CPU), and the restore
 * process then reads the image itself.  The worker logs nothing
 * (log_quiet_thread()): an image it could not read is read again by the
 * restore process, which says what is wrong with it, once.
 *
 * Then the worker probes the CPU's FPU state layout for the plan
 * (attrs/fpu.c): its dozen CPUIDs each a trip to the hypervisor, 0.1 ms
 * that stage 6 spent on one CPU while the other idled.  Nothing reads that
 * layout before the plan.  It did so first once, and began reading images
 * 0.1 ms after the restore process had: the images first, it read more of
 * them, and the probe runs beside stage 3, while we wait for the daemon's
 * answer (the bench tree's own restore time 0.1 - 0.15 ms shorter, medians
 * of 2 x 40 interleaved rounds).
 *
 * At stage 2's end rst_prefetch_images_done() tells it that no image is
 * wanted any more; rst_prefetch_stop() joins it at stage 4, before our
 * unshare() of the IPC namespace and long before any task exists, and
 * unmaps its stack, so the tasks forked later inherit no thread state of
 * it.  A worker not done by then is moved to our CPU, where it finishes
 * while we wait for it.  A tree too small to gain from it gets no worker:
 * the restore process probes at stage 6 then.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "common/mono-time.h"
#include "common/proc-task.h"
#include "attrs/task-attr.h"
#include "images/image.h"
#include "restore/images-prefetch.h"
#include "restore/restore.h"

#define MIN_ITEMS	12		/* fewer: the thread costs what it saves */
#define STACK_SIZE	(256 << 10)
/* a wait for an image the worker is reading, at most: longer, and it was
 * not running (reading a core image takes some 15 us) */
#define BUSY_WAIT_NS	100000

enum { ITEM_FREE, ITEM_BUSY, ITEM_DONE, ITEM_MINE };

struct pf_item {
	enum img_type type;
	unsigned long id;
	_Atomic int state;
	int ret;
	ProtobufCMessage *msg;
};

struct pf_state {
	int dirfd;
	struct pf_item *items;
	size_t nr, cursor;		/* cursor: where the next lookup starts */
	pthread_t thread;
	void *stack;
	_Atomic pid_t worker_tid;	/* once it runs */
	_Atomic bool stop;		/* no image wanted any more */
	_Atomic bool finished;		/* its images and the probe done */
	_Atomic size_t read_by_worker;
	int64_t t_start;
};

/* The one prefetch of this restore process, from stage 2's start to its end. */
static struct pf_state *pf;

static const ProtobufCMessageDescriptor *desc_of(enum img_type type)
{
	switch (type) {
	case IMG_CORE: return &core_entry__descriptor;
	case IMG_IDS: return &task_kobj_ids_entry__descriptor;
	case IMG_MM: return &mm_entry__descriptor;
	case IMG_FS: return &fs_entry__descriptor;
	default: return NULL;
	}
}

static void futex_op(_Atomic int *word, int op, int val, const struct timespec *timeout)
{
	syscall(SYS_futex, word, op | FUTEX_PRIVATE_FLAG, val, timeout, NULL, 0);
}

/* Until the worker is done with @it, for BUSY_WAIT_NS at most: its state. */
static int wait_busy(struct pf_item *it)
{
	int64_t deadline = mono_ns() + BUSY_WAIT_NS, left;
	int state;

	while ((state = atomic_load(&it->state)) == ITEM_BUSY &&
	       (left = deadline - mono_ns()) > 0) {
		struct timespec ts = { 0, left };

		futex_op(&it->state, FUTEX_WAIT, ITEM_BUSY, &ts);
	}
	return state;
}

static void *worker(void *arg)
{
	struct pf_state *s = arg;

	atomic_store(&s->worker_tid, (pid_t)syscall(SYS_gettid));
	log_quiet_thread();
	for (size_t i = s->nr; i-- > 0 && !atomic_load(&s->stop);) {
		struct pf_item *it = &s->items[i];
		int expected = ITEM_FREE;

		if (!atomic_compare_exchange_strong(&it->state, &expected, ITEM_BUSY))
			continue;
		it->ret = img_read_one(s->dirfd, it->type, it->id, desc_of(it->type), &it->msg);
		atomic_fetch_add(&s->read_by_worker, 1);
		atomic_store(&it->state, ITEM_DONE);
		futex_op(&it->state, FUTEX_WAKE, 1, NULL);
	}
	attr_fpu_host_probe();
	atomic_store(&s->finished, true);
	return NULL;
}

static int add(struct pf_state *s, size_t *cap, enum img_type type, unsigned long id)
{
	if (s->nr == *cap) {
		size_t n = *cap ? *cap * 2 : 64;
		struct pf_item *items = realloc(s->items, n * sizeof(*items));

		if (!items)
			return -ENOMEM;
		s->items = items;
		*cap = n;
	}
	s->items[s->nr++] = (struct pf_item){ .type = type, .id = id, .state = ITEM_FREE };
	return 0;
}

/* In the order stage 2 reads them (tree-load.c, images-load.c, threads.c). */
static int list_items(struct pf_state *s, PstreeEntry **entries, size_t nr)
{
	size_t cap = 0;
	int ret = 0;

	for (size_t e = 0; !ret && e < nr; e++) {
		const PstreeEntry *ps = entries[e];

		ret = add(s, &cap, IMG_CORE, ps->pid);
		for (size_t t = 0; !ret && t < ps->n_threads; t++)
			if (ps->threads[t] != ps->pid && (pid_t)ps->threads[t] > 0)
				ret = add(s, &cap, IMG_CORE, ps->threads[t]);
		if (!ret)
			ret = add(s, &cap, IMG_IDS, ps->pid);
		if (!ret)
			ret = add(s, &cap, IMG_MM, ps->pid);
		if (!ret)
			ret = add(s, &cap, IMG_FS, ps->pid);
	}
	return ret;
}

/*
 * The other CPUs we may run on: left to the scheduler, the new thread
 * waited on ours until we had read everything ourselves (0 of 32 images
 * read by it on the 2-vCPU test VM).  None: no worker.
 */
static int other_cpus(cpu_set_t *set)
{
	int cpu = sched_getcpu();

	if (cpu < 0 || sched_getaffinity(0, sizeof(*set), set))
		return -errno;
	CPU_CLR(cpu, set);
	return CPU_COUNT(set) ? 0 : -ENOENT;
}

static int start_worker(struct pf_state *s)
{
	pthread_attr_t attr;
	cpu_set_t cpus;
	int ret = other_cpus(&cpus);

	if (ret)
		return ret;

	s->stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->stack == MAP_FAILED) {
		s->stack = NULL;
		return -errno;
	}
	ret = pthread_attr_init(&attr);
	if (!ret)
		ret = pthread_attr_setstack(&attr, s->stack, STACK_SIZE);
	if (!ret)
		ret = pthread_attr_setaffinity_np(&attr, sizeof(cpus), &cpus);
	if (!ret) {
		sigset_t all, old;

		/* no signal of ours is ever handled on it */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		ret = pthread_create(&s->thread, &attr, worker, s);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_attr_destroy(&attr);
	if (ret) {
		munmap(s->stack, STACK_SIZE);
		s->stack = NULL;
	}
	return -ret;
}

void rst_prefetch_start(int dirfd, PstreeEntry **entries, size_t nr)
{
	struct pf_state *s = calloc(1, sizeof(*s));

	if (!s)
		return;		/* only slower */
	s->dirfd = dirfd;
	s->t_start = mono_us();
	if (list_items(s, entries, nr) || s->nr < MIN_ITEMS || start_worker(s)) {
		free(s->items);
		free(s);
		return;
	}
	pf = s;
}

static struct pf_item *find(struct pf_state *s, enum img_type type, unsigned long id)
{
	for (size_t k = 0; k < s->nr; k++) {
		size_t i = (s->cursor + k) % s->nr;

		if (s->items[i].type == type && s->items[i].id == id) {
			s->cursor = i + 1;
			return &s->items[i];
		}
	}
	return NULL;
}

int rst_img_read_one(int dirfd, enum img_type type, unsigned long id,
		     const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
	struct pf_item *it = pf && pf->dirfd == dirfd && desc == desc_of(type) ?
			     find(pf, type, id) : NULL;
	int state = ITEM_FREE;

	if (!it || atomic_compare_exchange_strong(&it->state, &state, ITEM_MINE))
		return img_read_one(dirfd, type, id, desc, out);
	if (state == ITEM_BUSY)
		state = wait_busy(it);
	/* (still BUSY: the worker's copy is freed by rst_prefetch_stop()) */
	if (state == ITEM_DONE && !it->ret) {
		*out = it->msg;
		it->msg = NULL;
		atomic_store(&it->state, ITEM_MINE);
		return 0;
	}
	/* the worker failed on it (or it was taken already): read it here,
	 * where the error is said */
	return img_read_one(dirfd, type, id, desc, out);
}

static int find_worker(pid_t tid, void *arg)
{
	if (tid == (pid_t)syscall(SYS_gettid))
		return 0;
	*(pid_t *)arg = tid;
	return 1;
}

/*
 * Pinned to another CPU, the worker may wait there behind other work before
 * it can end: on ours, it runs as soon as we wait for it.  (Not run yet:
 * its tid is found in /proc.)  Only slower if this fails.
 */
static void worker_to_our_cpu(struct pf_state *s)
{
	pid_t tid = atomic_load(&s->worker_tid);
	int cpu = sched_getcpu();
	cpu_set_t one;

	if (!tid)
		proc_each_thread(getpid(), find_worker, &tid);
	if (!tid || cpu < 0)
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	sched_setaffinity(tid, sizeof(one), &one);
}

void rst_prefetch_images_done(void)
{
	if (pf)
		atomic_store(&pf->stop, true);
}

void rst_prefetch_stop(void)
{
	struct pf_state *s = pf;

	if (!s)
		return;
	pf = NULL;
	atomic_store(&s->stop, true);
	if (!atomic_load(&s->finished))
		worker_to_our_cpu(s);
	pthread_join(s->thread, NULL);
	pr_debug("the worker read %zu of the %zu images and probed the FPU in %lld us",
		 (size_t)s->read_by_worker, s->nr, (long long)(mono_us() - s->t_start));
	munmap(s->stack, STACK_SIZE);
	for (size_t i = 0; i < s->nr; i++)
		if (s->items[i].msg)
			protobuf_c_message_free_unpacked(s->items[i].msg, NULL);
	free(s->items);
	free(s);
}
