/*
 * Unit tests of common/array.h: the capacity doubles from the first size,
 * a need past SIZE_MAX (elements or bytes) is -ENOMEM with the array as it
 * was, and a need that fits changes nothing.  Prints "ok - NAME" or
 * "FAIL - NAME" per case (unit.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/array.h"
#include "unit.h"

static int test_doubles_from_first(void)
{
	uint64_t *v = NULL;
	size_t cap = 0;

	CHECK(!ARRAY_GROW(v, cap, 1, 16) && v && cap == 16, "");
	v[15] = 7;
	CHECK(!ARRAY_GROW(v, cap, 16, 16) && cap == 16, "");	/* fits: no change */
	CHECK(!ARRAY_GROW(v, cap, 17, 16) && cap == 32 && v[15] == 7, "");
	CHECK(!ARRAY_GROW(v, cap, 200, 16) && cap == 256 && v[15] == 7, "");
	free(v);
	return 0;
}

static int test_zero_first(void)
{
	char *v = NULL;
	size_t cap = 0;

	CHECK(!ARRAY_GROW(v, cap, 3, 0) && cap == 4, "");
	free(v);
	return 0;
}

static int test_overflow(void)
{
	uint64_t *v = NULL, *was;
	size_t cap = 0;

	CHECK(!ARRAY_GROW(v, cap, 4, 4), "");
	was = v;
	/* the elements fit in size_t, their bytes do not */
	CHECK(ARRAY_GROW(v, cap, SIZE_MAX / 4, 4) == -ENOMEM && v == was && cap == 4, "");
	/* no power of two from 4 reaches it */
	CHECK(ARRAY_GROW(v, cap, SIZE_MAX, 4) == -ENOMEM && v == was && cap == 4, "");
	CHECK(array_grow((void **)&v, &cap, SIZE_MAX / 2 + 2, 1, 4) == -ENOMEM && cap == 4, "");
	free(v);
	return 0;
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "doubles_from_first", test_doubles_from_first },
		{ "zero_first", test_zero_first },
		{ "overflow", test_overflow },
	};

	return unit_run(cases, sizeof(cases) / sizeof(cases[0]));
}
