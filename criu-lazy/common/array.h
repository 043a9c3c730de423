/*
 * Growing arrays: the one place that doubles a capacity and reallocs.
 *
 *	if (ARRAY_GROW(t->waiting, t->cap_waiting, t->nr_waiting + 1, 16))
 *		return -ENOMEM;
 *	t->waiting[t->nr_waiting++] = img;
 *
 * A ring (a FIFO of *nr elements from *head, wrapping at cap) grows with
 * RING_GROW(), which also puts its elements back in order from index 0.
 *
 * Header only, so images/ and the fuzz targets use it without linking
 * anything of criu-lazy/ (pie/ has no libc and does not).
 */
#ifndef CRIU_LAZY_COMMON_ARRAY_H
#define CRIU_LAZY_COMMON_ARRAY_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * Make room for @need elements of @size bytes in *@v, which has room for
 * *@cap: the capacity doubles, from @first for an empty array, until @need
 * fits.  0, with *@v and *@cap the new array and its capacity, or -ENOMEM
 * (realloc failed, or the bytes would pass SIZE_MAX) with both as they
 * were and the old array intact.  Logs nothing: the caller knows what for.
 */
static inline int array_grow(void **v, size_t *cap, size_t need, size_t size, size_t first)
{
	size_t n = *cap ? *cap : first ? first : 1;
	void *grown;

	if (need <= *cap)
		return 0;
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return -ENOMEM;
		n *= 2;
	}
	if (size && n > SIZE_MAX / size)
		return -ENOMEM;
	grown = realloc(*v, n * size);
	if (!grown)
		return -ENOMEM;
	*v = grown;
	*cap = n;
	return 0;
}

/* array_grow() on a typed array @arr with its size_t capacity @cap (lvalues) */
#define ARRAY_GROW(arr, cap, need, first) ({					\
	void *__array_v = (arr);						\
	int __array_ret = array_grow(&__array_v, &(cap), (need), sizeof(*(arr)),	\
				     (first));					\
	if (!__array_ret)							\
		(arr) = __array_v;						\
	__array_ret;								\
})

/*
 * Room for one more element in the ring *@v of *@cap elements of @size
 * bytes, @nr of them in use from *@head on: a full ring doubles (from
 * @first) into a new array that holds them in order from index 0 (*@head
 * 0).  0, or -ENOMEM with the ring as it was.
 */
static inline int ring_grow(void **v, size_t *cap, size_t *head, size_t nr, size_t size,
			    size_t first)
{
	size_t n = *cap ? *cap : first ? first : 1;
	char *grown;

	if (nr < *cap)
		return 0;
	if (*cap) {
		if (n > SIZE_MAX / 2)
			return -ENOMEM;
		n *= 2;
	}
	if (size && n > SIZE_MAX / size)
		return -ENOMEM;
	grown = malloc(n * size);
	if (!grown)
		return -ENOMEM;
	for (size_t i = 0; i < nr; i++)
		memcpy(grown + i * size, (char *)*v + (*head + i) % *cap * size, size);
	free(*v);
	*v = grown;
	*cap = n;
	*head = 0;
	return 0;
}

/* ring_grow() on a typed ring @arr: its capacity, head and count (lvalues) */
#define RING_GROW(arr, cap, head, nr, first) ({					\
	void *__ring_v = (arr);							\
	int __ring_ret = ring_grow(&__ring_v, &(cap), &(head), (nr), sizeof(*(arr)),	\
				   (first));					\
	if (!__ring_ret)							\
		(arr) = __ring_v;						\
	__ring_ret;								\
})

#endif
