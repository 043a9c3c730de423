/*
 * argv, environ and the mm fields behind them.  Records at start:
 * /proc/self/cmdline, /proc/self/environ, /proc/self/auxv (which may lose
 * the pairs a dump leaves out to fit CRIU's 44 words), the exe link,
 * the comm (set to "zdtm-argv"), the code/data/stack/arg/env bounds of
 * /proc/self/stat, and copies of the strings behind argv[] and environ[].
 * After SIGTERM all of them must be identical: the kernel reads cmdline
 * and environ through mm->arg_start.. and env_start.., the program through
 * its own pointers, and both must still find the same strings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

extern char **environ;

static const int stat_fields[] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };
static const char *const stat_names[] = {
	"start_code", "end_code", "start_stack", "start_data", "end_data",
	"start_brk", "arg_start", "arg_end", "env_start", "env_end",
};
#define NSTAT (sizeof(stat_fields) / sizeof(stat_fields[0]))

struct snapshot {
	char cmdline[65536], environ_[65536], auxv[4096], exe[4096], comm[64];
	size_t cmdline_len, environ_len, auxv_len;
	char strings[131072];	/* argv strings, then environ strings */
	size_t strings_len;
	int argc, envc;
	unsigned long long stat[NSTAT];
};

static struct snapshot before, after;

static void take(struct snapshot *s, int argc, char **argv)
{
	ssize_t n;
	size_t i;
	char **e;

	s->cmdline_len = read_file("/proc/self/cmdline", s->cmdline, sizeof(s->cmdline));
	s->environ_len = read_file("/proc/self/environ", s->environ_, sizeof(s->environ_));
	s->auxv_len = read_file("/proc/self/auxv", s->auxv, sizeof(s->auxv));
	n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
	if (n < 0)
		fail("readlink /proc/self/exe: %m");
	s->exe[n] = '\0';
	if (prctl(PR_GET_NAME, s->comm))
		fail("PR_GET_NAME: %m");
	for (i = 0; i < NSTAT; i++)
		s->stat[i] = proc_stat_field(stat_fields[i]);

	s->strings_len = 0;
	s->argc = argc;
	for (i = 0; i < (size_t)argc; i++) {
		size_t len = strlen(argv[i]) + 1;

		if (s->strings_len + len > sizeof(s->strings))
			fail("argv too long");
		memcpy(s->strings + s->strings_len, argv[i], len);
		s->strings_len += len;
	}
	s->envc = 0;
	for (e = environ; *e; e++, s->envc++) {
		size_t len = strlen(*e) + 1;

		if (s->strings_len + len > sizeof(s->strings))
			fail("environ too long");
		memcpy(s->strings + s->strings_len, *e, len);
		s->strings_len += len;
	}
}

static void same(const char *what, const void *a, size_t alen, const void *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		fail("%s: %zu bytes, expected %zu", what, blen, alen);
	for (i = 0; i < alen; i++)
		if (((const char *)a)[i] != ((const char *)b)[i])
			fail("%s differs at byte %zu", what, i);
}

/* The auxv types a dump may leave out to fit CRIU's 44 words (images/auxv.c). */
static int auxv_droppable(uint64_t type)
{
	return type == 28 || type == 27 || type == 51 || type == 26;
}

/*
 * /proc/self/auxv after the restore: the same pairs in the same order,
 * except pairs the dump may leave out to fit CRIU's bound.
 */
static void same_auxv(const struct snapshot *b, const struct snapshot *a)
{
	const uint64_t *bw = (const uint64_t *)b->auxv, *aw = (const uint64_t *)a->auxv;
	size_t bn = b->auxv_len / 16, an = a->auxv_len / 16, i = 0, j = 0;

	for (; j < an; j++) {
		while (i < bn && (bw[2 * i] != aw[2 * j] || bw[2 * i + 1] != aw[2 * j + 1])) {
			if (!auxv_droppable(bw[2 * i]))
				fail("/proc/self/auxv: type %llu (value %#llx) is gone or changed",
				     (unsigned long long)bw[2 * i], (unsigned long long)bw[2 * i + 1]);
			i++;
		}
		if (i == bn)
			fail("/proc/self/auxv: type %llu (value %#llx) was not there before",
			     (unsigned long long)aw[2 * j], (unsigned long long)aw[2 * j + 1]);
		i++;
	}
	for (; i < bn; i++)
		if (!auxv_droppable(bw[2 * i]))
			fail("/proc/self/auxv: type %llu is gone", (unsigned long long)bw[2 * i]);
}

int main(int argc, char **argv)
{
	const char *extra = NULL;
	const struct test_opt opts[] = {
		{ "extra", TEST_OPT_STR, &extra, 0, "any string: it must survive in argv" },
		{ NULL, 0, NULL, 0, NULL },
	};
	const char *marker;
	size_t i;

	test_init(argc, argv, opts);
	if (prctl(PR_SET_NAME, "zdtm-argv"))
		fail("PR_SET_NAME: %m");
	marker = getenv("ZDTM_ENV_MARK");
	take(&before, argc, argv);
	if (before.envc == 0)
		fail("the environment is empty: nothing to check");
	test_msg("argc %d envc %d extra '%s' ZDTM_ENV_MARK '%s'", argc, before.envc,
		 extra ? extra : "", marker ? marker : "");

	test_daemon();
	test_waitsig();

	take(&after, argc, argv);
	same("/proc/self/cmdline", before.cmdline, before.cmdline_len,
	     after.cmdline, after.cmdline_len);
	same("/proc/self/environ", before.environ_, before.environ_len,
	     after.environ_, after.environ_len);
	same_auxv(&before, &after);
	if (strcmp(before.exe, after.exe))
		fail("/proc/self/exe is '%s', expected '%s'", after.exe, before.exe);
	if (strcmp(before.comm, after.comm))
		fail("comm is '%s', expected '%s'", after.comm, before.comm);
	for (i = 0; i < NSTAT; i++)
		if (before.stat[i] != after.stat[i])
			fail("%s in /proc/self/stat is %#llx, expected %#llx", stat_names[i],
			     after.stat[i], before.stat[i]);
	if (before.envc != after.envc)
		fail("environ has %d entries, expected %d", after.envc, before.envc);
	same("the strings behind argv[] and environ[]", before.strings, before.strings_len,
	     after.strings, after.strings_len);
	if (marker && (!getenv("ZDTM_ENV_MARK") || strcmp(getenv("ZDTM_ENV_MARK"), marker)))
		fail("getenv(ZDTM_ENV_MARK) changed");
	if (getauxval(AT_PAGESZ) != PAGE_SIZE || !getauxval(AT_RANDOM))
		fail("getauxval no longer works");
	pass();
}
