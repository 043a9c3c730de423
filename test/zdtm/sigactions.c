/*
 * Signal actions: handlers with SA_SIGINFO, SA_RESTART, SA_NODEFER,
 * SA_RESETHAND, SA_ONSTACK, SA_NOCLDSTOP and sa_masks, ignored signals,
 * and a default action with flags.  The kernel's view of every signal
 * 1..64 (handler, flags, restorer, mask, read with rt_sigaction) is
 * recorded before and compared after.  Then the actions are exercised:
 * each handler runs with the right siginfo and the right blocked mask,
 * SA_RESETHAND resets, SIG_IGN ignores.
 */
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

struct ksigaction {
	unsigned long handler;
	unsigned long flags;
	unsigned long restorer;
	uint64_t mask;
};

static struct ksigaction before[65];

static void get_action(int sig, struct ksigaction *ka)
{
	memset(ka, 0, sizeof(*ka));
	if (syscall(SYS_rt_sigaction, sig, NULL, ka, 8))
		fail("rt_sigaction(%d): %m", sig);
}

/* what the handlers saw */
static volatile int hits[65];
static volatile int info_code[65], info_value[65], info_pid[65];
static sigset_t seen_mask[65];

static void h_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	hits[sig]++;
	info_code[sig] = si->si_code;
	info_value[sig] = si->si_value.sival_int;
	info_pid[sig] = si->si_pid;
	sigprocmask(SIG_BLOCK, NULL, &seen_mask[sig]);
}

static void h_plain(int sig)
{
	hits[sig]++;
	sigprocmask(SIG_BLOCK, NULL, &seen_mask[sig]);
}

static void set(int sig, void *handler, int siginfo, int flags, const int *mask)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	for (; mask && *mask; mask++)
		sigaddset(&sa.sa_mask, *mask);
	if (siginfo)
		sa.sa_sigaction = handler;
	else
		sa.sa_handler = handler;
	sa.sa_flags = flags | (siginfo ? SA_SIGINFO : 0);
	if (sigaction(sig, &sa, NULL))
		fail("sigaction(%d): %m", sig);
}

static void queue(int sig, int value)
{
	union sigval v = { .sival_int = value };

	if (sigqueue(getpid(), sig, v))
		fail("sigqueue(%d): %m", sig);
}

/* The mask inside the handler: the mask outside + sa_mask (+ sig). */
static void expect_handler_mask(int sig, const int *extra, int with_sig)
{
	sigset_t want;

	sigprocmask(SIG_BLOCK, NULL, &want);
	for (; extra && *extra; extra++)
		sigaddset(&want, *extra);
	if (with_sig)
		sigaddset(&want, sig);
	else
		sigdelset(&want, sig);
	for (int i = 1; i < 65; i++)
		if (i != SIGKILL && i != SIGSTOP &&
		    sigismember(&want, i) != sigismember(&seen_mask[sig], i))
			fail("signal %d ran its handler with signal %d %s", sig, i,
			     sigismember(&want, i) ? "unblocked (sa_mask lost?)" :
			     "blocked (wrong sa_mask or SA_NODEFER lost?)");
}

int main(int argc, char **argv)
{
	static const int usr1_mask[] = { SIGINT, SIGQUIT, 0 };
	static const int usr2_mask[] = { SIGCHLD, 0 };
	int rt_full[66], n = 0, sig, rtmin2 = SIGRTMIN + 2, rtmax = SIGRTMAX;
	struct ksigaction after;

	test_init(argc, argv, NULL);

	for (sig = 1; sig < 65; sig++)
		if (sig != SIGKILL && sig != SIGSTOP && sig != rtmin2)
			rt_full[n++] = sig;
	rt_full[n] = 0;

	set(SIGUSR1, h_info, 1, SA_RESTART, usr1_mask);
	set(SIGUSR2, h_plain, 0, SA_NODEFER | SA_RESETHAND, usr2_mask);
	set(SIGHUP, SIG_IGN, 0, 0, NULL);
	set(SIGINT, h_plain, 0, SA_ONSTACK, NULL);
	set(SIGCHLD, h_info, 1, SA_NOCLDSTOP | SA_RESTART, NULL);
	set(SIGPIPE, SIG_IGN, 0, SA_RESTART, NULL);
	set(SIGWINCH, SIG_DFL, 0, SA_RESTART, NULL);
	set(rtmin2, h_info, 1, 0, rt_full);
	set(rtmax, h_plain, 0, SA_RESTART | SA_NODEFER, NULL);

	for (sig = 1; sig < 65; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			get_action(sig, &before[sig]);

	test_msg("recorded actions %p", (void *)before);
	test_daemon();
	test_waitsig();

	for (sig = 1; sig < 65; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		get_action(sig, &after);
		if (after.handler != before[sig].handler)
			fail("signal %d: handler %#lx, expected %#lx", sig,
			     after.handler, before[sig].handler);
		if (after.flags != before[sig].flags)
			fail("signal %d: sa_flags %#lx, expected %#lx", sig,
			     after.flags, before[sig].flags);
		if (after.restorer != before[sig].restorer)
			fail("signal %d: sa_restorer %#lx, expected %#lx", sig,
			     after.restorer, before[sig].restorer);
		if (after.mask != before[sig].mask)
			fail("signal %d: sa_mask %#llx, expected %#llx", sig,
			     (unsigned long long)after.mask,
			     (unsigned long long)before[sig].mask);
	}

	/* Now use them. */
	queue(SIGUSR1, 1111);
	if (hits[SIGUSR1] != 1 || info_code[SIGUSR1] != SI_QUEUE ||
	    info_value[SIGUSR1] != 1111 || info_pid[SIGUSR1] != getpid())
		fail("SIGUSR1 handler: %d calls, si_code %d, value %d, pid %d",
		     hits[SIGUSR1], info_code[SIGUSR1], info_value[SIGUSR1],
		     info_pid[SIGUSR1]);
	expect_handler_mask(SIGUSR1, usr1_mask, 1);

	raise(SIGUSR2);
	if (hits[SIGUSR2] != 1)
		fail("SIGUSR2 handler ran %d times", hits[SIGUSR2]);
	expect_handler_mask(SIGUSR2, usr2_mask, 0);
	get_action(SIGUSR2, &after);
	if (after.handler != (unsigned long)SIG_DFL)
		fail("SA_RESETHAND did not reset SIGUSR2's handler");

	raise(SIGINT);
	if (hits[SIGINT] != 1)
		fail("SIGINT handler ran %d times", hits[SIGINT]);
	expect_handler_mask(SIGINT, NULL, 1);

	raise(SIGHUP);		/* ignored: we are still here */
	raise(SIGPIPE);

	queue(rtmin2, 2222);
	if (hits[rtmin2] != 1 || info_code[rtmin2] != SI_QUEUE || info_value[rtmin2] != 2222)
		fail("SIGRTMIN+2 handler: %d calls, si_code %d, value %d",
		     hits[rtmin2], info_code[rtmin2], info_value[rtmin2]);
	expect_handler_mask(rtmin2, rt_full, 1);

	raise(rtmax);
	if (hits[rtmax] != 1)
		fail("SIGRTMAX handler ran %d times", hits[rtmax]);
	expect_handler_mask(rtmax, NULL, 0);
	pass();
}
