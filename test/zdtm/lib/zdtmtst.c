/*
 * zdtm protocol: options, pidfile, waiting for SIGTERM, PASS/FAIL.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmtst.h"

static const char *pidfile;
static const char *outfile;
static const char *name = "zdtm";
static volatile sig_atomic_t sigterm_seen;

const char *test_name(void)
{
	return name;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void vmsg(const char *prefix, const char *fmt, va_list ap)
{
	char buf[1024];
	int n, m;

	n = snprintf(buf, sizeof(buf), "%s: %s", name, prefix);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = 0;
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n >= sizeof(buf) - 1)
		n = sizeof(buf) - 2;
	if (n == 0 || buf[n - 1] != '\n')
		buf[n++] = '\n';
	write_all(STDERR_FILENO, buf, (size_t)n);
}

void test_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

static void write_outfile(const char *text)
{
	int fd;

	if (!outfile)
		return;
	fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		test_msg("cannot open outfile %s: %m", outfile);
		return;
	}
	write_all(fd, text, strlen(text));
	close(fd);
}

void pass(void)
{
	write_outfile("PASS\n");
	test_msg("PASS");
	exit(0);
}

void fail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	size_t n;

	strcpy(buf, "FAIL: ");
	va_start(ap, fmt);
	vsnprintf(buf + 6, sizeof(buf) - 8, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		n--;
	buf[n++] = '\n';
	buf[n] = '\0';
	write_outfile(buf);
	write_all(STDERR_FILENO, name, strlen(name));
	write_all(STDERR_FILENO, ": ", 2);
	write_all(STDERR_FILENO, buf, n);
	exit(1);
}

static void usage(const struct test_opt *opts, const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", name);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nusage: %s --pidfile FILE --outfile FILE", name);
	for (; opts && opts->name; opts++)
		fprintf(stderr, " %s--%s%s%s", opts->required ? "" : "[",
			opts->name, opts->type == TEST_OPT_FLAG ? "" : " VALUE",
			opts->required ? "" : "]");
	fprintf(stderr, "\n");
	exit(2);
}

static int parse_size(const char *s, size_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end)
		return -1;
	*out = (size_t)v;
	return 0;
}

static int set_opt(const struct test_opt *o, const char *val)
{
	char *end;

	switch (o->type) {
	case TEST_OPT_STR:
		*(const char **)o->val = val;
		return 0;
	case TEST_OPT_INT:
		errno = 0;
		*(long *)o->val = strtol(val, &end, 0);
		return (errno || end == val || *end) ? -1 : 0;
	case TEST_OPT_SIZE:
		return parse_size(val, (size_t *)o->val);
	case TEST_OPT_FLAG:
		*(int *)o->val = 1;
		return 0;
	}
	return -1;
}

static void sigterm_handler(int sig)
{
	(void)sig;
	sigterm_seen = 1;
}

void test_init(int argc, char **argv, const struct test_opt *opts)
{
	struct sigaction sa;
	const char *slash;
	int i, j, nopts = 0;
	int seen[64] = { 0 };

	if (argc > 0 && argv[0]) {
		slash = strrchr(argv[0], '/');
		name = slash ? slash + 1 : argv[0];
	}
	while (opts && opts[nopts].name)
		nopts++;
	if (nopts > 64)
		usage(NULL, "%s", "too many options");

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL, *eq;
		size_t len;

		if (strncmp(arg, "--", 2))
			usage(opts, "unexpected argument '%s'", arg);
		arg += 2;
		eq = strchr(arg, '=');
		len = eq ? (size_t)(eq - arg) : strlen(arg);

		if (len == 7 && !strncmp(arg, "pidfile", 7)) {
			val = eq ? eq + 1 : argv[++i];
			if (!val)
				usage(opts, "%s", "--pidfile needs a value");
			pidfile = val;
			continue;
		}
		if (len == 7 && !strncmp(arg, "outfile", 7)) {
			val = eq ? eq + 1 : argv[++i];
			if (!val)
				usage(opts, "%s", "--outfile needs a value");
			outfile = val;
			continue;
		}
		for (j = 0; j < nopts; j++)
			if (strlen(opts[j].name) == len &&
			    !strncmp(opts[j].name, arg, len))
				break;
		if (j == nopts)
			usage(opts, "unknown option '%s'", argv[i]);
		if (opts[j].type != TEST_OPT_FLAG) {
			val = eq ? eq + 1 : argv[++i];
			if (!val)
				usage(opts, "option '%s' needs a value", argv[i - 1]);
		} else if (eq) {
			usage(opts, "option '%s' takes no value", argv[i]);
		}
		if (set_opt(&opts[j], val))
			usage(opts, "bad value '%s'", val);
		seen[j] = 1;
	}
	if (!pidfile || !outfile)
		usage(opts, "%s", "--pidfile and --outfile are required");
	for (j = 0; j < nopts; j++)
		if (opts[j].required && !seen[j])
			usage(opts, "option --%s is required", opts[j].name);

	/* A stale outfile would let a dead test look like a passing one. */
	if (unlink(outfile) && errno != ENOENT)
		fail("cannot remove old outfile %s: %m", outfile);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sigterm_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL))
		fail("sigaction(SIGTERM): %m");
	/* ZDTM_MDWE set: deny write-execute memory (prctl PR_SET_MDWE,
	 * PR_MDWE_REFUSE_EXEC_GAIN), a state the dump must refuse */
	if (getenv("ZDTM_MDWE") && prctl(65, 1, 0, 0, 0))
		fail("prctl(PR_SET_MDWE): %m");
}

void test_daemon(void)
{
	char tmp[4096], buf[32];
	int fd, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", pidfile, getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		fail("pidfile path too long");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("open %s: %m", tmp);
	n = snprintf(buf, sizeof(buf), "%d\n", getpid());
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		fail("write %s: %m", tmp);
	}
	if (close(fd))
		fail("close %s: %m", tmp);
	if (rename(tmp, pidfile))
		fail("rename %s -> %s: %m", tmp, pidfile);
}

void test_waitsig(void)
{
	sigset_t term, old, wait;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &term, &old))
		fail("sigprocmask: %m");
	if (sigismember(&old, SIGTERM))
		fail("the test blocked SIGTERM before waiting for it");
	/*
	 * SIGTERM is blocked only between the flag check and sigsuspend (no
	 * lost wake-up); inside sigsuspend the mask is exactly `old`.
	 */
	wait = old;
	while (!sigterm_seen)
		sigsuspend(&wait);
	if (sigprocmask(SIG_SETMASK, &old, NULL))
		fail("sigprocmask: %m");
}

int test_thread_create(pthread_t *thread, const pthread_attr_t *attr,
		       void *(*fn)(void *), void *arg)
{
	sigset_t term, old;
	int ret;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &term, &old))
		fail("pthread_sigmask: %m");
	ret = pthread_create(thread, attr, fn, arg);
	if (pthread_sigmask(SIG_SETMASK, &old, NULL))
		fail("pthread_sigmask: %m");
	return ret;
}

void test_wait_flag(volatile sig_atomic_t *flag, int sig)
{
	sigset_t set, old;

	sigemptyset(&set);
	sigaddset(&set, sig);
	if (sigprocmask(SIG_BLOCK, &set, &old))
		fail("sigprocmask: %m");
	/* blocked from the check into sigsuspend, which unblocks it atomically */
	while (!*flag)
		sigsuspend(&old);
	if (sigprocmask(SIG_SETMASK, &old, NULL))
		fail("sigprocmask: %m");
}

int test_stopped(void)
{
	return sigterm_seen;
}

const volatile sig_atomic_t *test_stop_flag(void)
{
	return &sigterm_seen;
}

/* ------------------------------------------------------------ trees */

static pid_t tree_root;

static void kill_descendants(pid_t pid)
{
	char path[64];
	FILE *f;
	int kid;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fscanf(f, "%d", &kid) == 1) {
		kill(kid, SIGKILL);
		kill_descendants(kid);
	}
	fclose(f);
}

static void kill_tree(void)
{
	if (getpid() != tree_root)
		return;
	/* orphans come to us, to be reaped here, not by whoever started us */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	/* the init of a pid namespace (lazy-migrate) may see another
	 * namespace's /proc, where pid 1 is someone else: it ends everything
	 * in its namespace instead */
	if (tree_root == 1)
		kill(-1, SIGKILL);
	else
		kill_descendants(tree_root);
	while (waitpid(-1, NULL, __WALL) > 0 || errno == EINTR)
		;
}

void test_kill_tree_at_exit(void)
{
	tree_root = getpid();
	atexit(kill_tree);
}

void fd_place(int fd, int at, int cloexec)
{
	if (fd < 0)
		fail("making fd %d: %m", at);
	if (fd == at)
		return;
	if (dup3(fd, at, cloexec ? O_CLOEXEC : 0) != at)
		fail("dup3 %d -> %d: %m", fd, at);
	close(fd);
}
