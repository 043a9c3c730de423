/*
 * A region checked page by page, where a page that raises SIGBUS counts as
 * poisoned instead of ending the check: each page is either right (the
 * pattern it was filled with), poisoned, or wrong (zeros, anything else).
 * The lazy-pages tests kill the daemon mid restore and expect no page
 * wrong (test/test_lazy_guardian.py).
 *
 * Run as any zdtm program (SIGTERM only), it checks its region in place:
 * PASS when every page is right.  The tests go further, one signal at a
 * time, while the daemon still serves the task:
 *   SIGUSR1  arm: fault in the stack the check will use, a fresh
 *            sigaltstack (a new VMA: not registered) and the SIGBUS
 *            handler, read the first half of the region and the lib's
 *            SIGTERM flag; says "armed"
 *   SIGUSR2  fork a child with a raw clone (glibc's fork would run its
 *            atfork handlers over memory that may be poisoned by now);
 *            each says "forked child PID" / nothing; with --exit-after-fork
 *            the parent then exits 0 at once, leaving the child alone
 *   SIGTERM  each process checks the whole region and writes
 *            "mem_sigbus: pid P: R right, B poisoned, W wrong" with write(2)
 *            from the stack (stdio's buffers may be poisoned); the child
 *            exits 0 or 1 (wrong pages), the parent reaps it, then PASS
 *            (every page right) or FAIL (the last may die of SIGBUS on
 *            poisoned libc memory: the line is what counts).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "lib/lazy.h"
#include "lib/zdtmtst.h"

#define SEED 0x73696762757373ULL
#define ALTSTACK_SIZE (256 * 1024)
#define STACK_PREFAULT (128 * 1024)

static volatile sig_atomic_t usr1, usr2;
static sigjmp_buf jb;
static volatile sig_atomic_t in_check;

static void on_usr(int sig)
{
	if (sig == SIGUSR1)
		usr1 = 1;
	else
		usr2 = 1;
}

static void say(const char *msg);

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char line[96];

	if (in_check)
		siglongjmp(jb, 1);
	/* outside the check: say where, then die of it, as without us */
	snprintf(line, sizeof(line), "mem_sigbus: pid %d: SIGBUS outside the check at %p "
		 "(ip %#llx)\n", (int)syscall(SYS_getpid), si->si_addr,
#ifdef REG_RIP
		 (unsigned long long)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP]);
#else
		 (unsigned long long)(uc ? 0 : 0));
#endif
	say(line);
	/* the access is retried on return and kills us (no raise(): a raw
	 * clone's child has its parent's tid in its TLS) */
	signal(sig, SIG_DFL);
}

/* Wait until *flag (NULL: none) or SIGTERM, with no lost wake-up. */
static void wait_for(volatile sig_atomic_t *flag)
{
	sigset_t block, old;

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	while (!(flag && *flag) && !test_stopped())
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void say(const char *msg)
{
	size_t len = strlen(msg);

	while (len) {
		ssize_t n = write(STDERR_FILENO, msg, len);

		if (n <= 0)
			return;
		msg += n;
		len -= n;
	}
}

static void dry_run(const uint8_t *mem)
{
	char line[160];

	snprintf(line, sizeof(line), "%d %zu %p", (int)syscall(SYS_getpid), (size_t)1, (void *)mem);
	if (pattern_find_bad(mem, PAGE_SIZE, SEED) != PAGE_SIZE)
		fail("page 0 of the region is wrong before any check");
	/*
	 * The lib's SIGTERM flag (and its output file's name) sit in a .bss
	 * page never touched before the dump: not in the images, so the
	 * guardian poisons it if it is still missing.  The wait after "armed"
	 * reads it first, and the test may kill the daemon before that wait
	 * runs (a busy machine did): SIGBUS in the SIGTERM handler.
	 */
	if (test_stopped())
		return;
}

static __attribute__((noinline)) void prefault_stack(void)
{
	volatile char buf[STACK_PREFAULT];

	for (size_t i = 0; i < sizeof(buf); i += PAGE_SIZE)
		buf[i] = 0;
}

/*
 * And the stack above us up to argv: main's frame, whose line for the fork
 * and the results' addresses are written only after the daemon may be
 * gone, can lie on a page above the one the restore filled (where it lies
 * is the stack's random offset: 1 run of test_killed_with_a_fork_unread in
 * 200 met it, SIGBUS in snprintf before "forked child").
 */
static void prefault_stack_above(const void *top)
{
	uint8_t sum = 0;

	for (const volatile char *p = __builtin_frame_address(0); p < (const char *)top;
	     p += PAGE_SIZE)
		sum += *p;
	sum += *(const volatile char *)top;
	(void)sum;
}

static void arm(uint8_t *mem, size_t npages, const void *stack_top)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER };
	stack_t ss = { .ss_size = ALTSTACK_SIZE };
	volatile uint8_t sum = 0;

	prefault_stack();
	prefault_stack_above(stack_top);
	ss.ss_sp = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, NULL))
		fail("sigaltstack: %m");
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL))
		fail("sigaction SIGBUS: %m");
	for (size_t i = 0; i < npages / 2; i++)
		sum += mem[i * PAGE_SIZE];
	(void)sum;
	/*
	 * What the check and its report use besides the region (libc's data,
	 * our TLS on the heap) must be here before a fork: pages that come
	 * only later come to the parent, and a child's copy of them would be
	 * poisoned once the daemon is killed.
	 */
	dry_run(mem);
}

/*
 * The check of every page; returns the number of wrong pages, the first
 * in *first, and the poisoned ones in *nr_poisoned.
 */
static size_t check(uint8_t *mem, size_t npages, size_t *first, size_t *nr_poisoned)
{
	volatile size_t right = 0, poisoned = 0, wrong = 0, first_wrong = npages;
	char line[160];

	for (volatile size_t i = 0; i < npages; i++) {
		in_check = 1;
		if (sigsetjmp(jb, 1)) {
			in_check = 0;
			poisoned++;
			continue;
		}
		if (pattern_find_bad(mem + i * PAGE_SIZE, PAGE_SIZE, SEED + i) == PAGE_SIZE) {
			right++;
		} else {
			if (!wrong)
				first_wrong = i;
			wrong++;
		}
		in_check = 0;
	}
	snprintf(line, sizeof(line), "mem_sigbus: pid %d: %zu right, %zu poisoned, %zu wrong "
		 "(first wrong page %zu)\n", (int)syscall(SYS_getpid), (size_t)right,
		 (size_t)poisoned, (size_t)wrong, (size_t)first_wrong);
	say(line);
	*first = first_wrong;
	*nr_poisoned = poisoned;
	return wrong;
}

int main(int argc, char **argv)
{
	size_t npages = 1024;
	int exit_after_fork = 0;
	const struct test_opt opts[] = {
		{ "pages", TEST_OPT_SIZE, &npages, 0, "pages in the region" },
		{ "exit-after-fork", TEST_OPT_FLAG, &exit_after_fork, 0,
		  "the parent exits 0 right after the fork of SIGUSR2" },
		{ NULL, 0, NULL, 0, NULL },
	};
	struct sigaction sa = { .sa_handler = on_usr };
	char line[96];
	pid_t child = 0;
	uint8_t *mem;
	size_t wrong, first, poisoned;

	test_init(argc, argv, opts);
	mem = lazy_map_guarded(npages);
	for (size_t i = 0; i < npages; i++)
		pattern_fill(mem + i * PAGE_SIZE, PAGE_SIZE, SEED + i);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	test_msg("region %p, %zu pages", (void *)mem, npages);
	test_daemon();

	wait_for(&usr1);
	arm(mem, npages, argv);
	if (usr1) {
		say("mem_sigbus: armed\n");
		wait_for(&usr2);
		if (usr2) {
			child = syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
			if (child < 0)
				fail("clone: %m");
			if (child > 0) {
				snprintf(line, sizeof(line), "mem_sigbus: forked child %d\n", child);
				say(line);
				if (exit_after_fork)
					_exit(0);
			}
		}
	}
	wait_for(NULL);
	wrong = check(mem, npages, &first, &poisoned);
	if (child == 0 && usr2)
		_exit(wrong ? 1 : 0);
	if (child > 0) {
		int status;

		if (waitpid(child, &status, 0) != child)
			fail("waitpid %d: %m", child);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			fail("the child %d found wrong pages or died (status %#x)", child, status);
	}
	if (wrong)
		fail("%zu pages of the region are wrong, the first is page %zu", wrong, first);
	/* PASS is for all of it right; the tests read the line above */
	if (poisoned)
		fail("%zu pages of the region raised SIGBUS (none was wrong)", poisoned);
	pass();
}
