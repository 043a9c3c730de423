/*
 * The saved auxiliary vector as CRIU's images carry it.
 *
 * CRIU 4.2 on x86_64 refuses an mm entry whose mm_saved_auxv holds more
 * than 44 words (its AT_VECTOR_SIZE) and its own dump never writes more.
 * Linux 6.18 gives 46 words for an ordinary process, so a vector read from
 * /proc/PID/auxv is fitted into CRIU's bound before it is written: pairs
 * are dropped in the order of auxv_drop_order (types that only the
 * process's own start-up code reads, from its stack copy, never from
 * /proc/PID/auxv or PR_GET_AUXV), then from the end, and the vector always
 * ends with the AT_NULL pair.
 */
#ifndef CRIU_LAZY_IMAGES_AUXV_H
#define CRIU_LAZY_IMAGES_AUXV_H

#include <stddef.h>
#include <stdint.h>

#define CRIU_AUXV_WORDS_MAX	44	/* CRIU 4.2's AT_VECTOR_SIZE on x86_64 */

/*
 * Fit the vector auxv[0..nr_words) (type/value pairs, possibly with its
 * AT_NULL pair) into at most max_words words ending with AT_NULL, in
 * place; auxv must have room for max_words words.  Returns the new number of words (even, >= 2), or 0 if max_words
 * is below 2.  *dropped gets how many pairs were left out.
 */
size_t auxv_fit(uint64_t *auxv, size_t nr_words, size_t max_words, size_t *dropped);

#endif
