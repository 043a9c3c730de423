/*
 * Blocked mask and pending signals.  Blocked: SIGUSR2, SIGWINCH, SIGHUP,
 * SIGRTMIN+5, SIGRTMAX-1.  Pending while blocked:
 *   SIGUSR2     sigqueue to the process (shared queue), value 0x1234
 *   SIGWINCH    kill() to the process (shared queue, SI_USER)
 *   SIGRTMIN+5  twice, rt_tgsigqueueinfo to the thread (private queue),
 *               values 0xa1 then 0xa2: real-time signals queue in order
 * After SIGTERM: the same blocked mask, the same pending sets, the same
 * SigPnd/ShdPnd (private vs shared) in /proc/self/status; then unblocking
 * delivers each signal exactly as queued (count, si_code, value, pid, uid).
 */
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

struct got {
	int signo, code, value, pid, uid;
};

static struct got got[16];
static volatile int ngot;

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (ngot < 16) {
		got[ngot].signo = sig;
		got[ngot].code = si->si_code;
		got[ngot].value = si->si_value.sival_int;
		got[ngot].pid = si->si_pid;
		got[ngot].uid = (int)si->si_uid;
	}
	ngot++;
}

static void mask_str(const sigset_t *set, char *buf, size_t size)
{
	size_t n = 0;
	int sig;

	buf[0] = '\0';
	for (sig = 1; sig < 65 && n + 4 < size; sig++)
		if (sigismember(set, sig) == 1)
			n += (size_t)snprintf(buf + n, size - n, "%d ", sig);
}

static void expect_set(const char *what, const sigset_t *want, const sigset_t *have)
{
	char w[256], h[256];
	int sig;

	for (sig = 1; sig < 65; sig++)
		if (sigismember(want, sig) != sigismember(have, sig)) {
			mask_str(want, w, sizeof(w));
			mask_str(have, h, sizeof(h));
			fail("%s: signals { %s} expected, { %s} found", what, w, h);
		}
}

static const struct got *find(int signo, int nth)
{
	int i;

	for (i = 0; i < ngot && i < 16; i++)
		if (got[i].signo == signo && nth-- == 0)
			return &got[i];
	return NULL;
}

static void expect_got(const char *name, int signo, int nth, int code, int value)
{
	const struct got *g = find(signo, nth);

	if (!g)
		fail("%s (signal %d) #%d was not delivered", name, signo, nth + 1);
	if (g->code != code)
		fail("%s #%d: si_code %d, expected %d", name, nth + 1, g->code, code);
	if (code == SI_QUEUE && g->value != value)
		fail("%s #%d: si_value %#x, expected %#x", name, nth + 1, g->value, value);
	if (g->pid != getpid() || g->uid != (int)getuid())
		fail("%s #%d: si_pid %d si_uid %d, expected %d %d", name, nth + 1,
		     g->pid, g->uid, getpid(), (int)getuid());
}

int main(int argc, char **argv)
{
	int rt5 = SIGRTMIN + 5, rtmax1 = SIGRTMAX - 1, i;
	int sigs[] = { SIGUSR2, SIGWINCH, SIGHUP, rt5, rtmax1 };
	char shd_before[64], pnd_before[64], val[64];
	sigset_t blocked, pending, orig, now;
	struct sigaction sa;
	siginfo_t si;
	union sigval v;

	test_init(argc, argv, NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < 5; i++)
		if (sigaction(sigs[i], &sa, NULL))
			fail("sigaction(%d): %m", sigs[i]);

	sigemptyset(&blocked);
	for (i = 0; i < 5; i++)
		sigaddset(&blocked, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &blocked, &orig))
		fail("sigprocmask: %m");
	sigprocmask(SIG_BLOCK, NULL, &blocked);

	v.sival_int = 0x1234;
	if (sigqueue(getpid(), SIGUSR2, v))
		fail("sigqueue: %m");
	if (kill(getpid(), SIGWINCH))
		fail("kill: %m");
	for (i = 0; i < 2; i++) {
		memset(&si, 0, sizeof(si));
		si.si_signo = rt5;
		si.si_code = SI_QUEUE;
		si.si_pid = getpid();
		si.si_uid = getuid();
		si.si_value.sival_int = 0xa1 + i;
		if (syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), rt5, &si))
			fail("rt_tgsigqueueinfo: %m");
	}
	if (sigpending(&pending))
		fail("sigpending: %m");
	if (proc_status_value("ShdPnd", shd_before, sizeof(shd_before)) ||
	    proc_status_value("SigPnd", pnd_before, sizeof(pnd_before)))
		fail("no ShdPnd/SigPnd in /proc/self/status");
	if (ngot)
		fail("a blocked signal was delivered before the checkpoint");

	test_daemon();
	test_waitsig();

	if (ngot)
		fail("%d blocked signal(s) were delivered during the checkpoint, the first %d",
		     ngot, got[0].signo);
	sigprocmask(SIG_BLOCK, NULL, &now);
	expect_set("blocked mask", &blocked, &now);
	sigpending(&now);
	expect_set("pending signals", &pending, &now);
	if (proc_status_value("ShdPnd", val, sizeof(val)) || strcmp(val, shd_before))
		fail("ShdPnd (process-wide pending) is %s, expected %s", val, shd_before);
	if (proc_status_value("SigPnd", val, sizeof(val)) || strcmp(val, pnd_before))
		fail("SigPnd (thread-private pending) is %s, expected %s", val, pnd_before);

	/* Deliver them all. */
	if (sigprocmask(SIG_SETMASK, &orig, NULL))
		fail("sigprocmask: %m");
	if (ngot != 4)
		fail("%d signals delivered after unblocking, expected 4", ngot);
	expect_got("SIGUSR2", SIGUSR2, 0, SI_QUEUE, 0x1234);
	expect_got("SIGWINCH", SIGWINCH, 0, SI_USER, 0);
	expect_got("SIGRTMIN+5", rt5, 0, SI_QUEUE, 0xa1);
	expect_got("SIGRTMIN+5", rt5, 1, SI_QUEUE, 0xa2);
	sigpending(&now);
	for (i = 0; i < 5; i++)
		if (sigismember(&now, sigs[i]))
			fail("signal %d still pending after delivery", sigs[i]);
	pass();
}
