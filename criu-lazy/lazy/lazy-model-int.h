/*
 * Inside the lazy model: the bitmaps and the region array, shared by
 * lazy-model.c (delivery) and lazy-model-layout.c (mremap, fork).
 */
#ifndef CRIU_LAZY_LAZY_MODEL_INT_H
#define CRIU_LAZY_LAZY_MODEL_INT_H

#include "lazy/lazy-model.h"

#define BITS_PER_WORD 64

static inline uint64_t region_pages(const struct lazy_region *r)
{
	return (r->end - r->start) / LAZY_PAGE_SIZE;
}

static inline uint64_t bitmap_words(uint64_t nr_bits)
{
	return (nr_bits + BITS_PER_WORD - 1) / BITS_PER_WORD;
}

static inline bool bit_test(const uint64_t *bits, uint64_t i)
{
	return bits[i / BITS_PER_WORD] & (1ULL << (i % BITS_PER_WORD));
}

/* Set (value) or clear bits [from, to); returns how many changed. */
uint64_t bits_assign(uint64_t *bits, uint64_t from, uint64_t to, bool value);
/* First set bit at or after from, or nr_bits if none. */
uint64_t bits_next_set(const uint64_t *bits, uint64_t from, uint64_t nr_bits);
/* Last set bit before nr_bits (there must be one). */
uint64_t bits_last_set(const uint64_t *bits, uint64_t nr_bits);

/* Index of the region holding addr, or -1. */
long region_find(const struct lazy_model *m, uint64_t addr);
/* Index of the first region ending after addr (may be nr_regions). */
size_t region_lower_bound(const struct lazy_model *m, uint64_t addr);
/* A new region at index at with nothing pending (the caller fills it). */
int region_insert(struct lazy_model *m, size_t at, uint64_t start, uint64_t end,
		  uint64_t img_start);
void region_remove(struct lazy_model *m, size_t i);
/* Set bits [from, to) of region i pending; keeps the counts. */
void region_set(struct lazy_model *m, size_t i, uint64_t from, uint64_t to);

#endif
