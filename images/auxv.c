#include <elf.h>

#include "images/auxv.h"

#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE	27
#endif
#ifndef AT_RSEQ_ALIGN
#define AT_RSEQ_ALIGN		28
#endif
#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ		51
#endif

/* Left out first when the vector is too long (see auxv.h). */
static const uint64_t auxv_drop_order[] = {
	AT_RSEQ_ALIGN, AT_RSEQ_FEATURE_SIZE, AT_MINSIGSTKSZ, AT_HWCAP2,
};

/* The number of pairs before the AT_NULL pair (or the end). */
static size_t auxv_pairs(const uint64_t *auxv, size_t nr_words)
{
	size_t n = 0;

	while (2 * n + 1 < nr_words && auxv[2 * n] != AT_NULL)
		n++;
	return n;
}

static void remove_pair(uint64_t *auxv, size_t *pairs, size_t i)
{
	for (size_t k = i; k + 1 < *pairs; k++) {
		auxv[2 * k] = auxv[2 * k + 2];
		auxv[2 * k + 1] = auxv[2 * k + 3];
	}
	(*pairs)--;
}

static long find_pair(const uint64_t *auxv, size_t pairs, uint64_t type)
{
	for (size_t i = 0; i < pairs; i++)
		if (auxv[2 * i] == type)
			return i;
	return -1;
}

size_t auxv_fit(uint64_t *auxv, size_t nr_words, size_t max_words, size_t *dropped)
{
	size_t pairs = auxv_pairs(auxv, nr_words), max_pairs;

	*dropped = 0;
	if (max_words < 2)
		return 0;
	max_pairs = max_words / 2 - 1;	/* room for the AT_NULL pair */

	for (size_t d = 0; pairs > max_pairs && d < sizeof(auxv_drop_order) / sizeof(auxv_drop_order[0]); d++) {
		long i = find_pair(auxv, pairs, auxv_drop_order[d]);

		if (i >= 0) {
			remove_pair(auxv, &pairs, i);
			(*dropped)++;
		}
	}
	if (pairs > max_pairs) {
		*dropped += pairs - max_pairs;
		pairs = max_pairs;
	}
	auxv[2 * pairs] = AT_NULL;
	auxv[2 * pairs + 1] = 0;
	return 2 * pairs + 2;
}
