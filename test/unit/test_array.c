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

/* A full ring that wrapped comes back in order from index 0, twice the size. */
static int test_ring_in_order(void)
{
	int *v = NULL;
	size_t cap = 0, head = 0, nr = 0;

	CHECK(!RING_GROW(v, cap, head, nr, 4) && cap == 4 && head == 0, "");
	for (int i = 0; i < 4; i++)
		v[nr++] = i;
	head = 2;			/* two taken, two more put in behind them */
	nr -= 2;
	v[0] = 4;
	v[1] = 5;
	nr += 2;
	CHECK(!RING_GROW(v, cap, head, nr, 4) && cap == 8 && head == 0, "cap %zu", cap);
	for (int i = 0; i < 4; i++)
		CHECK(v[i] == i + 2, "v[%d] = %d", i, v[i]);
	CHECK(!RING_GROW(v, cap, head, nr, 4) && cap == 8, "not full: no change");
	free(v);
	return 0;
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "doubles_from_first", test_doubles_from_first },
		{ "zero_first", test_zero_first },
		{ "overflow", test_overflow },
		{ "ring_in_order", test_ring_in_order },
	};

	return unit_run(cases, sizeof(cases) / sizeof(cases[0]));
}
