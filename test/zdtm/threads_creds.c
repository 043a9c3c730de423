/*
 * Threads with credentials of their own (the kernel keeps them per
 * thread; only libc makes setuid() process-wide, so raw syscalls here):
 *
 *   main  root, every capability
 *   t1    a seccomp filter (uname -> ENOMSG) installed as root without
 *         no_new_privs, then setresuid(1000, 1001, 1002): an unprivileged
 *         uid, no caps left (the restore must install the filter before
 *         it gives the thread its creds back)
 *   t2    setresgid(2000, 2001, 2002) and setgroups(3000, 3001), still root
 *   t3    capset: CAP_NET_BIND_SERVICE and CAP_CHOWN permitted, CAP_CHOWN
 *         effective and inheritable, CAP_SYS_ADMIN dropped from the
 *         bounding set, no_new_privs set
 *
 * Each thread records its Uid, Gid, Groups, Cap... and NoNewPrivs lines of
 * /proc/thread-self/status, and after the restore must find them again.
 */
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/sc.h"
#include "lib/zdtmtst.h"

#define NR_WORKERS 3

struct worker {
	const char *name;
	volatile int ready, go, done;
	char why[2200];
	char creds[1024];	/* the lines, as recorded */
	pthread_t th;
};

static struct worker w[NR_WORKERS] = { { .name = "t1" }, { .name = "t2" }, { .name = "t3" } };
static char main_creds[1024];

static const char *const keys[] = {
	"Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:",
	"NoNewPrivs:",
};

static void sleep_ms(void)
{
	struct timespec ms = { 0, 1000000 };

	nanosleep(&ms, NULL);
}

/* The credential lines of the calling thread, in @out. */
static void read_creds(char *out, size_t size)
{
	char buf[8192];
	size_t len = 0;

	read_file("/proc/thread-self/status", buf, sizeof(buf));
	out[0] = '\0';
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		char *p = strstr(buf, keys[k]), *e;

		if (!p || !(e = strchr(p, '\n')))
			continue;
		len += snprintf(out + len, size - len, "%.*s\n", (int)(e - p), p);
	}
}

static int change_creds(int i)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	const gid_t groups[] = { 3000, 3001 };

	switch (i) {
	case 0: {
		const struct sc_rule f[] = { { SYS_uname, SECCOMP_RET_ERRNO | ENOMSG }, { 0, 0 } };

		return sc_install(f, 0) || syscall(SYS_setresuid, 1000, 1001, 1002);
	}
	case 1:
		return syscall(SYS_setgroups, 2, groups) ||
		       syscall(SYS_setresgid, 2000, 2001, 2002);
	default:
		memset(data, 0, sizeof(data));
		data[0].permitted = 1u << CAP_NET_BIND_SERVICE | 1u << CAP_CHOWN;
		data[0].effective = 1u << CAP_CHOWN;
		data[0].inheritable = 1u << CAP_CHOWN;
		return prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) ||
		       syscall(SYS_capset, &hdr, data) ||
		       prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	}
}

static void *worker(void *arg)
{
	struct worker *me = arg;
	char now[1024];

	if (change_creds(me - w))
		snprintf(me->why, sizeof(me->why), "cannot change its creds: %m");
	read_creds(me->creds, sizeof(me->creds));
	me->ready = 1;
	while (!me->go)
		sleep_ms();
	read_creds(now, sizeof(now));
	if (strcmp(now, me->creds))
		snprintf(me->why, sizeof(me->why), "creds now:\n%swere:\n%s", now, me->creds);
	else if (me == &w[0] && sc_uname_errno() != ENOMSG)
		snprintf(me->why, sizeof(me->why), "its seccomp filter is gone");
	me->done = 1;
	return NULL;
}

static void wait_for(volatile int *flag, const char *what)
{
	for (int i = 0; i < 5000 && !*flag; i++)
		sleep_ms();
	if (!*flag)
		fail("%s", what);
}

int main(int argc, char **argv)
{
	sigset_t term, old;
	char now[1024];

	test_init(argc, argv, NULL);
	read_creds(main_creds, sizeof(main_creds));
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	for (int i = 0; i < NR_WORKERS; i++)
		if (pthread_create(&w[i].th, NULL, worker, &w[i]))
			fail("pthread_create failed");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (int i = 0; i < NR_WORKERS; i++) {
		wait_for(&w[i].ready, "a thread did not start");
		if (w[i].why[0])
			fail("%s: %s", w[i].name, w[i].why);
	}
	if (!strcmp(w[0].creds, main_creds) || !strcmp(w[1].creds, main_creds) ||
	    !strcmp(w[2].creds, main_creds))
		fail("a thread's creds did not change");
	test_msg("t1's recorded creds at %p", (void *)w[0].creds);
	test_daemon();
	test_waitsig();

	read_creds(now, sizeof(now));
	if (strcmp(now, main_creds))
		fail("the main thread's creds now:\n%swere:\n%s", now, main_creds);
	for (int i = 0; i < NR_WORKERS; i++)
		w[i].go = 1;
	for (int i = 0; i < NR_WORKERS; i++) {
		wait_for(&w[i].done, "a thread did not check its creds");
		if (w[i].why[0])
			fail("%s: %s", w[i].name, w[i].why);
		pthread_join(w[i].th, NULL);
	}
	pass();
}
