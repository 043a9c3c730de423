/*
 * The frame of the C unit test programs (test/unit/): CHECK() ends a case
 * with a line naming the condition, unit_run() runs a table of cases and
 * prints "ok - NAME" or "FAIL - NAME" for each; the exit status is the
 * number of failures (test/lib/unit.py reads both).  test_images.h runs
 * its cases in directories of their own, with the same CHECK().
 */
#ifndef CRIU_LAZY_TEST_UNIT_UNIT_H
#define CRIU_LAZY_TEST_UNIT_UNIT_H

#include <stddef.h>
#include <stdio.h>

#define CHECK(cond, fmt, ...)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("    line %d: %s: " fmt "\n", __LINE__, #cond,     \
			       ##__VA_ARGS__);                                 \
			return -1;                                             \
		}                                                              \
	} while (0)

struct unit_case {
	const char *name;
	int (*fn)(void);	/* 0, or -1 from a CHECK() */
};

static inline int unit_run(const struct unit_case *cases, size_t nr)
{
	int failed = 0;

	for (size_t i = 0; i < nr; i++) {
		int bad = cases[i].fn() != 0;

		printf("%s - %s\n", bad ? "FAIL" : "ok", cases[i].name);
		failed += bad;
	}
	return failed;
}

#endif
