/*
 * Copy-on-write across a tree (CRIU's cow01, for three generations): the
 * root fills 64 pages of private anonymous memory and forks child A, which
 * forks grandchild G.  Then, by quarter:
 *
 *   pages  0-15  nobody writes          one page in all three
 *   pages 16-31  the root writes        A and G share the old one
 *   pages 32-47  A writes before G      A and G share A's
 *   pages 48-63  G writes               the root and A share the old one
 *
 * After SIGTERM each process checks its contents; the root also checks,
 * through /proc/PID/pagemap (PFNs: root only), that the pages above are
 * shared exactly so -- when the harness says the restore was eager, or
 * there was none (the file restore-mode in the working directory): a lazy
 * restore delivers each process's pages on its own.  Then G, A and the
 * root in turn write every page and check that the others' pages did not
 * change (still private copies, not shared memory).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define SEED 0x636f7731ULL
#define PAGES 64
#define PFN_MASK ((1ULL << 55) - 1)

enum { ROOT, A, G, NR_PROCS };
static const char *const names[NR_PROCS] = { "root", "child A", "grandchild G" };

static uint8_t *region;
static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/* Who last wrote page i as seen by process `who` (before the final writes). */
static uint64_t seed_of(int who, int i)
{
	if (i >= 16 && i < 32 && who == ROOT)
		return SEED ^ 0x100 ^ i;
	if (i >= 32 && i < 48 && who != ROOT)
		return SEED ^ 0x200 ^ i;
	if (i >= 48 && who == G)
		return SEED ^ 0x300 ^ i;
	return SEED ^ i;
}

static uint64_t first_seed(int who, int i)
{
	(void)who;
	return SEED ^ i;
}

static uint64_t final_seed(int who, int i)
{
	return SEED ^ 0x4000 ^ (who << 8) ^ i;
}

static void fill(int who, int from, int to, uint64_t (*seed)(int, int))
{
	for (int i = from; i < to; i++)
		pattern_fill(region + i * PAGE_SIZE, PAGE_SIZE, seed(who, i));
}

/* -1, or the first page that is not what `who` must see. */
static int bad_page(int who, uint64_t (*seed)(int, int))
{
	for (int i = 0; i < PAGES; i++)
		if (pattern_find_bad(region + i * PAGE_SIZE, PAGE_SIZE, seed(who, i)) != PAGE_SIZE)
			return i;
	return -1;
}

static void child_fail(int who, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void child_fail(int who, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: %s: ", test_name(), names[who]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	_exit(1);
}

/* Check, wait for `below` to write everything, check again, write, check. */
static void finish(int who, pid_t below)
{
	int bad = bad_page(who, seed_of), status;

	if (bad >= 0)
		child_fail(who, "page %d is wrong after the restore", bad);
	if (below > 0) {
		kill(below, SIGTERM);
		if (waitpid(below, &status, 0) != below || status)
			child_fail(who, "its child ended with status %#x", status);
		bad = bad_page(who, seed_of);
		if (bad >= 0)
			child_fail(who, "page %d changed when its child wrote it", bad);
	}
	fill(who, 0, PAGES, final_seed);
	bad = bad_page(who, final_seed);
	if (bad >= 0)
		child_fail(who, "page %d is wrong after its own write", bad);
}

static void pfns(pid_t pid, uint64_t *out)
{
	char path[64];
	uint64_t pm[PAGES];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		fail("open %s: %m", path);
	if (pread(fd, pm, sizeof(pm), (uintptr_t)region / PAGE_SIZE * 8) != sizeof(pm))
		fail("read %s: %m", path);
	close(fd);
	for (int i = 0; i < PAGES; i++) {
		if (!(pm[i] & (1ULL << 63)))
			fail("page %d of pid %d is not present", i, pid);
		out[i] = pm[i] & PFN_MASK;
		if (!out[i])
			fail("%s shows no PFNs: the check needs CAP_SYS_ADMIN", path);
	}
}

/* Which processes must have page i as one page: a bit per process. */
static int sharers(int i)
{
	if (i < 16)
		return 1 << ROOT | 1 << A | 1 << G;
	if (i < 48)
		return 1 << A | 1 << G;
	return 1 << ROOT | 1 << A;
}

static void expect_sharing(const pid_t *pids)
{
	uint64_t pfn[NR_PROCS][PAGES];

	for (int p = 0; p < NR_PROCS; p++)
		pfns(pids[p], pfn[p]);
	for (int i = 0; i < PAGES; i++)
		for (int p = 0; p < NR_PROCS; p++)
			for (int q = p + 1; q < NR_PROCS; q++) {
				int both = (sharers(i) >> p & 1) && (sharers(i) >> q & 1);

				if (both && pfn[p][i] != pfn[q][i])
					fail("page %d is not shared between the %s and %s (pfn %#llx, %#llx)",
					     i, names[p], names[q], (unsigned long long)pfn[p][i],
					     (unsigned long long)pfn[q][i]);
				if (!both && pfn[p][i] == pfn[q][i])
					fail("page %d is one page in the %s and %s, which wrote it apart",
					     i, names[p], names[q]);
			}
	test_msg("every page is shared as it was");
}

/* No restore yet, or an eager one: the sharing must be there. */
static int sharing_expected(void)
{
	char mode[32] = "";
	int fd = open("restore-mode", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return 1;
	n = read(fd, mode, sizeof(mode) - 1);
	close(fd);
	mode[n > 0 ? n : 0] = '\0';
	mode[strcspn(mode, "\n")] = '\0';
	test_msg("restored in mode %s", mode);
	return !strcmp(mode, "eager");
}

static void wait_term(void)
{
	struct sigaction sa = { .sa_handler = on_term };

	sigaction(SIGTERM, &sa, NULL);
	test_wait_flag(&got_term, SIGTERM);
}

int main(int argc, char **argv)
{
	pid_t pids[NR_PROCS];
	int ready[2], bad, status;
	char c;

	test_init(argc, argv, NULL);
	test_kill_tree_at_exit();
	region = lazy_map_guarded(PAGES);
	fill(ROOT, 0, PAGES, first_seed);
	if (pipe(ready))
		fail("pipe: %m");
	pids[ROOT] = getpid();

	pids[A] = fork();
	if (pids[A] < 0)
		fail("fork: %m");
	if (pids[A] == 0) {
		char msg[1 + sizeof(pid_t)];
		pid_t g;

		/* a root killed by the harness takes A with it, and A takes G */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL))
			child_fail(A, "PR_SET_PDEATHSIG: %m");
		fill(A, 32, 48, seed_of);
		g = fork();
		if (g < 0)
			child_fail(A, "fork: %m");
		if (g == 0) {
			if (prctl(PR_SET_PDEATHSIG, SIGKILL))
				child_fail(G, "PR_SET_PDEATHSIG: %m");
			fill(G, 48, PAGES, seed_of);
			close(ready[0]);
			if (write(ready[1], "g", 1) != 1)
				_exit(2);
			close(ready[1]);
			wait_term();
			finish(G, 0);
			_exit(0);
		}
		close(ready[0]);
		msg[0] = 'a';	/* one write: G's "g" never lands inside it */
		memcpy(msg + 1, &g, sizeof(g));
		if (write(ready[1], msg, sizeof(msg)) != sizeof(msg))
			_exit(2);
		close(ready[1]);
		wait_term();
		finish(A, g);
		_exit(0);
	}
	fill(ROOT, 16, 32, seed_of);
	close(ready[1]);
	for (int got = 0; got < 2; got++) {
		if (read(ready[0], &c, 1) != 1)
			fail("a child did not get ready");
		if (c == 'a' && read(ready[0], &pids[G], sizeof(pids[G])) != sizeof(pids[G]))
			fail("child A did not say its child's pid");
	}
	close(ready[0]);
	test_msg("region %p, child A %d, grandchild G %d", (void *)region, pids[A], pids[G]);

	test_daemon();
	test_waitsig();

	bad = bad_page(ROOT, seed_of);
	if (bad >= 0)
		fail("root: page %d is wrong after the restore", bad);
	if (sharing_expected())
		expect_sharing(pids);
	kill(pids[A], SIGTERM);
	if (waitpid(pids[A], &status, 0) != pids[A] || status)
		fail("child A ended with status %#x (its reason is in the output)", status);
	bad = bad_page(ROOT, seed_of);
	if (bad >= 0)
		fail("root: page %d changed when A and G wrote theirs", bad);
	fill(ROOT, 0, PAGES, final_seed);
	bad = bad_page(ROOT, final_seed);
	if (bad >= 0)
		fail("root: page %d is wrong after its own write", bad);
	lazy_guards_expect("the region", region, PAGES);
	pass();
}
