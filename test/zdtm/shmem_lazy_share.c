/*
 * Shared memory that two processes write at once while its pages are
 * still arriving (issue 11, point 3): the root maps a MAP_SHARED |
 * MAP_ANONYMOUS region (--size), a MAP_SHARED mapping of /dev/zero (64
 * pages) and a MAP_SHARED memfd whose descriptor it closes (64 pages),
 * fills every page with a pattern, and forks a child.  After
 * SIGTERM (in the lazy modes with background delivery off: every page is
 * still to come), both go at the same moment, in each region:
 *   page % 8 == 0, 4    the root writes a new pattern
 *   page % 8 == 1, 5    the child writes a new pattern
 *   page % 8 == 2, 6    both read (the dumped pattern)
 *   page % 8 == 7       the root writes its first half, the child its second
 *   page % 8 == 3       nobody, until the checks
 * then each waits for the other and checks every page: its own writes, the
 * other's writes (one object, not a copy per process) and the rest as it
 * was dumped.  The child reports through its exit status.
 * --grow: the root also maps the first half of another 64-page memfd
 * (every page written through its descriptor, then closed) and, after
 * SIGTERM, grows that view in place (mremap, no move: no userfaultfd event)
 * to the whole memfd and checks every page (a lazy restore restores that
 * memfd eagerly: some of its pages lie outside every view of it).
 * --discard: after SIGTERM, before the child goes, the root discards the
 * third quarter of the shared region with MADV_DONTNEED (shared memory
 * keeps its data: the dumped pattern must still be read there) and the
 * fourth with MADV_REMOVE (a hole: zeros where nobody writes afterwards),
 * while their pages are still lazy; --pmadvise: both with process_madvise(2)
 * on itself (Linux 6.13 and later); --uring: both through io_uring
 * (IORING_OP_MADVISE, done by a kernel worker thread of the process).
 * --late N (with --discard): the discards come from a process the root
 * forks after SIGTERM (N = 1) or one forked by that one (N = 2), its pages
 * still lazy; it reads the two quarters (the dumped pattern, then zeros)
 * and reports through its exit status before the root goes on: the hole
 * is in the object, so the root and the child read zeros there too;
 * --clone3: the root forks it with clone3(2) (whose flags the daemon
 * cannot read: it must not guess the new process's pid).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define SEED		0x6c617a79ULL
#define SEED_ROOT	(SEED ^ 0x100000)
#define SEED_CHILD	(SEED ^ 0x200000)
#define SEED_HALF_R	(SEED ^ 0x300000)
#define SEED_HALF_C	(SEED ^ 0x400000)
#define DZ_PAGES	64
#define HALF		(PAGE_SIZE / 2)

struct region {
	uint8_t *addr;
	size_t pages;
	uint64_t seed;		/* its own, so the two regions differ */
};

#define NR_REGIONS	3

static struct region regions[NR_REGIONS];
static uint8_t *grown;
static int discard, pmadvise, uring;
static long late;
static int late_clone3;

/* Page i of region g was punched out by --discard (MADV_REMOVE). */
static int removed(const struct region *g, size_t i)
{
	return discard && g == &regions[0] && i >= g->pages / 4 * 3;
}

/* The page as dumped: its pattern, or zeros where --discard removed it. */
static int dumped_ok(const struct region *g, size_t i, const uint8_t *p)
{
	if (!removed(g, i))
		return pattern_find_bad(p, PAGE_SIZE, g->seed + SEED + i) == PAGE_SIZE;
	for (size_t k = 0; k < PAGE_SIZE; k++)
		if (p[k])
			return 0;
	return 1;
}

/* One IORING_OP_MADVISE through a ring of one entry: its result, or -1. */
static int uring_madvise(void *addr, size_t len, int advice)
{
	struct io_uring_params p = { 0 };
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	uint8_t *sq, *cq;
	int fd, ret = -1;

	fd = syscall(SYS_io_uring_setup, 1, &p);
	if (fd < 0)
		return -1;
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(uint32_t), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(*cqe), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
	sqe = mmap(NULL, sizeof(*sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
		   IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqe == MAP_FAILED)
		goto out;
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_MADVISE;
	sqe->addr = (uintptr_t)addr;
	sqe->len = len;
	sqe->fadvise_advice = advice;
	((uint32_t *)(sq + p.sq_off.array))[0] = 0;
	__atomic_store_n((uint32_t *)(sq + p.sq_off.tail), 1, __ATOMIC_RELEASE);
	if (syscall(SYS_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) != 1 ||
	    __atomic_load_n((uint32_t *)(cq + p.cq_off.tail), __ATOMIC_ACQUIRE) != 1)
		goto out;
	cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	errno = cqe->res < 0 ? -cqe->res : 0;
	ret = cqe->res ? -1 : 0;
out:
	close(fd);		/* the mappings go with the test */
	return ret;
}

/* madvise(2), or process_madvise(2) on ourselves (--pmadvise), or io_uring (--uring) */
static int discard_range(void *addr, size_t len, int advice)
{
	struct iovec iov = { .iov_base = addr, .iov_len = len };
	int pidfd, ret;

	if (uring)
		return uring_madvise(addr, len, advice);
	if (!pmadvise)
		return madvise(addr, len, advice);
	pidfd = syscall(SYS_pidfd_open, getpid(), 0);
	if (pidfd < 0)
		return -1;
	ret = syscall(SYS_process_madvise, pidfd, &iov, 1, advice, 0) == (long)len ? 0 : -1;
	close(pidfd);
	return ret;
}

static void discard_quarters(void)
{
	const struct region *g = &regions[0];
	size_t q = g->pages / 4;

	if (discard_range(g->addr + 2 * q * PAGE_SIZE, q * PAGE_SIZE, MADV_DONTNEED) ||
	    discard_range(g->addr + 3 * q * PAGE_SIZE, (g->pages - 3 * q) * PAGE_SIZE, MADV_REMOVE))
		fail("%s of the shared region: %m",
		     uring ? "io_uring madvise" : pmadvise ? "process_madvise" : "madvise");
}

/*
 * --late: a process forked now discards the quarters and checks them, at
 * depth generations below the caller; its status: 0, or 1 (a page wrong,
 * said), 2 (a call failed, said).
 */
static void __attribute__((noreturn)) late_discarder(long depth)
{
	const struct region *g = &regions[0];
	size_t q = g->pages / 4;
	int status;
	pid_t pid;

	if (depth > 1) {
		pid = fork();
		if (pid == 0)
			late_discarder(depth - 1);
		if (pid < 0 || waitpid(pid, &status, 0) != pid) {
			fprintf(stderr, "%s: late fork: %m\n", test_name());
			_exit(2);
		}
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 2);
	}
	if (discard_range(g->addr + 2 * q * PAGE_SIZE, q * PAGE_SIZE, MADV_DONTNEED) ||
	    discard_range(g->addr + 3 * q * PAGE_SIZE, (g->pages - 3 * q) * PAGE_SIZE,
			  MADV_REMOVE)) {
		fprintf(stderr, "%s: late fork: madvise of the shared region: %m\n", test_name());
		_exit(2);
	}
	for (size_t i = 2 * q; i < g->pages; i++) {
		if (!dumped_ok(g, i, g->addr + i * PAGE_SIZE)) {
			fprintf(stderr, "%s: late fork: page %zu is wrong (%s)\n", test_name(), i,
				removed(g, i) ? "not zeros after MADV_REMOVE" :
						"not the dumped data after MADV_DONTNEED");
			_exit(1);
		}
	}
	_exit(0);
}

static void late_discard(void)
{
	struct clone_args args = { .exit_signal = SIGCHLD };
	pid_t pid = late_clone3 ? syscall(SYS_clone3, &args, sizeof(args)) : fork();
	int status;

	if (pid == 0)
		late_discarder(late);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		fail("fork or wait of the late discarder: %m");
	if (status)
		fail("the process forked after the restore ended with status %#x", status);
}

#define SEED_GROW	0x67726f77ULL

/* A memfd written through its fd, half of it mapped at the start of a
 * hole as big as the whole (the other half stays free for the growth). */
static void map_half(void)
{
	uint8_t page[PAGE_SIZE];
	int fd = memfd_create("lazy-grow", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, DZ_PAGES * PAGE_SIZE))
		fail("memfd_create: %m");
	for (int i = 0; i < DZ_PAGES; i++) {
		pattern_fill(page, PAGE_SIZE, SEED_GROW + i);
		if (pwrite(fd, page, PAGE_SIZE, (off_t)i * PAGE_SIZE) != PAGE_SIZE)
			fail("pwrite: %m");
	}
	grown = mmap(NULL, DZ_PAGES * PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (grown == MAP_FAILED ||
	    mmap(grown, DZ_PAGES / 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 fd, 0) == MAP_FAILED ||
	    munmap(grown + DZ_PAGES / 2 * PAGE_SIZE, DZ_PAGES / 2 * PAGE_SIZE))
		fail("mmap of a memfd: %m");
	close(fd);
}

static void grow_and_check(void)
{
	char what[64];

	if (mremap(grown, DZ_PAGES / 2 * PAGE_SIZE, DZ_PAGES * PAGE_SIZE, 0) != grown)
		fail("mremap in place of the memfd view %p: %m", (void *)grown);
	for (int i = DZ_PAGES - 1; i >= 0; i--) {
		snprintf(what, sizeof(what), "grown memfd view, page %d", i);
		pattern_expect(what, grown + i * PAGE_SIZE, PAGE_SIZE, SEED_GROW + i);
	}
}

static void write_part(int is_root)
{
	for (int r = 0; r < NR_REGIONS; r++) {
		const struct region *g = &regions[r];

		for (size_t i = 0; i < g->pages; i++) {
			uint8_t *p = g->addr + i * PAGE_SIZE;

			switch (i % 8) {
			case 0: case 4:
				if (is_root)
					pattern_fill(p, PAGE_SIZE, g->seed + SEED_ROOT + i);
				break;
			case 1: case 5:
				if (!is_root)
					pattern_fill(p, PAGE_SIZE, g->seed + SEED_CHILD + i);
				break;
			case 7:
				if (is_root)
					pattern_fill(p, HALF, g->seed + SEED_HALF_R + i);
				else
					pattern_fill(p + HALF, HALF, g->seed + SEED_HALF_C + i);
				break;
			}
		}
	}
}

/* The first wrong page (region * 1000000 + page), or -1. */
static long check_all(void)
{
	for (int r = 0; r < NR_REGIONS; r++) {
		const struct region *g = &regions[r];

		for (size_t i = 0; i < g->pages; i++) {
			const uint8_t *p = g->addr + i * PAGE_SIZE;
			int ok;

			switch (i % 8) {
			case 0: case 4:
				ok = pattern_find_bad(p, PAGE_SIZE, g->seed + SEED_ROOT + i) == PAGE_SIZE;
				break;
			case 1: case 5:
				ok = pattern_find_bad(p, PAGE_SIZE, g->seed + SEED_CHILD + i) == PAGE_SIZE;
				break;
			case 7:
				ok = pattern_find_bad(p, HALF, g->seed + SEED_HALF_R + i) == HALF &&
				     pattern_find_bad(p + HALF, HALF, g->seed + SEED_HALF_C + i) == HALF;
				break;
			default:
				ok = dumped_ok(g, i, p);
			}
			if (!ok)
				return r * 1000000L + (long)i;
		}
	}
	return -1;
}

/* Read the pages both only read, while the other writes. */
static long check_read_only_pages(void)
{
	for (int r = 0; r < NR_REGIONS; r++) {
		const struct region *g = &regions[r];

		for (size_t i = 2; i < g->pages; i += 4)
			if (!dumped_ok(g, i, g->addr + i * PAGE_SIZE))
				return r * 1000000L + (long)i;
	}
	return -1;
}

static void sync_byte(int fd_w, int fd_r)
{
	char c = 's';

	if (write(fd_w, &c, 1) != 1 || read(fd_r, &c, 1) != 1)
		_exit(3);
}

static void __attribute__((noreturn)) child(int go_r, int done_w, int back_r)
{
	char c;
	long bad;

	/* the root's SIGTERM handling is its own: we wait for its byte */
	signal(SIGTERM, SIG_IGN);
	if (read(go_r, &c, 1) != 1)
		_exit(2);
	write_part(0);
	bad = check_read_only_pages();
	if (bad >= 0) {
		fprintf(stderr, "%s: child: read-only page %ld is wrong\n", test_name(), bad);
		_exit(1);
	}
	sync_byte(done_w, back_r);	/* both have written */
	bad = check_all();
	if (bad >= 0) {
		fprintf(stderr, "%s: child: page %ld is wrong (region * 1000000 + page)\n",
			test_name(), bad);
		_exit(1);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	size_t size = 4 << 20;
	int grow = 0;
	const struct test_opt opts[] = {
		{ "size", TEST_OPT_SIZE, &size, 0, "bytes of the shared anonymous region" },
		{ "grow", TEST_OPT_FLAG, &grow, 0, "a memfd view grown in place after the restore" },
		{ "discard", TEST_OPT_FLAG, &discard, 0,
		  "MADV_DONTNEED and MADV_REMOVE of the shared region after the restore" },
		{ "pmadvise", TEST_OPT_FLAG, &pmadvise, 0,
		  "--discard with process_madvise(2) on ourselves" },
		{ "uring", TEST_OPT_FLAG, &uring, 0, "--discard with io_uring (IORING_OP_MADVISE)" },
		{ "late", TEST_OPT_INT, &late, 0,
		  "--discard by a process forked after the restore, N generations down" },
		{ "clone3", TEST_OPT_FLAG, &late_clone3, 0, "--late forks with clone3(2)" },
		{ NULL, 0, NULL, 0, NULL },
	};
	int go[2], done[2], back[2], status, zero;
	long bad;
	pid_t pid;
	char c;

	test_init(argc, argv, opts);
	test_kill_tree_at_exit();
	regions[0].pages = (size + PAGE_SIZE - 1) / PAGE_SIZE;
	if (!regions[0].pages)
		fail("--size must be at least one byte");
	regions[0].addr = mmap(NULL, regions[0].pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	zero = open("/dev/zero", O_RDWR | O_CLOEXEC);
	if (zero < 0)
		fail("/dev/zero: %m");
	regions[1].pages = DZ_PAGES;
	regions[1].addr = mmap(NULL, DZ_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			       zero, 0);
	close(zero);
	if (regions[0].addr == MAP_FAILED || regions[1].addr == MAP_FAILED)
		fail("mmap: %m");
	regions[1].seed = 0x5a5a0000;
	zero = memfd_create("lazy-share", MFD_CLOEXEC);
	if (zero < 0 || ftruncate(zero, DZ_PAGES * PAGE_SIZE))
		fail("memfd_create: %m");
	regions[2].pages = DZ_PAGES;
	regions[2].addr = mmap(NULL, DZ_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			       zero, 0);
	close(zero);
	if (regions[2].addr == MAP_FAILED)
		fail("mmap of a memfd: %m");
	regions[2].seed = 0x6d6d0000;
	for (int r = 0; r < NR_REGIONS; r++)
		for (size_t i = 0; i < regions[r].pages; i++)
			pattern_fill(regions[r].addr + i * PAGE_SIZE, PAGE_SIZE,
				     regions[r].seed + SEED + i);
	if (grow)
		map_half();
	if (pipe(go) || pipe(done) || pipe(back))
		fail("pipe: %m");
	pid = fork();
	if (pid < 0)
		fail("fork: %m");
	if (pid == 0) {
		close(go[1]);
		close(done[0]);
		close(back[1]);
		child(go[0], done[1], back[0]);
	}
	close(go[0]);
	close(done[1]);
	close(back[0]);
	test_msg("shared region %p (%zu pages), /dev/zero %p, memfd %p, child %d",
		 (void *)regions[0].addr, regions[0].pages, (void *)regions[1].addr,
		 (void *)regions[2].addr, pid);

	test_daemon();
	test_waitsig();
	if (discard && late > 0)
		late_discard();
	else if (discard)
		discard_quarters();

	/* both write at once, every page still lazy */
	if (write(go[1], "g", 1) != 1)
		fail("cannot wake the child: %m");
	write_part(1);
	bad = check_read_only_pages();
	if (bad >= 0)
		fail("read-only page %ld is wrong (region * 1000000 + page)", bad);
	if (read(done[0], &c, 1) != 1)
		fail("the child ended before it wrote its part");
	if (write(back[1], "b", 1) != 1)
		fail("cannot tell the child: %m");
	bad = check_all();
	if (bad >= 0)
		fail("page %ld is wrong (region * 1000000 + page): the child's writes are not "
		     "seen here, or the dumped data is not", bad);
	if (waitpid(pid, &status, 0) != pid || status)
		fail("the child ended with status %#x (it does not see the root's writes, "
		     "or the dumped data)", status);
	if (grow)
		grow_and_check();
	pass();
}
