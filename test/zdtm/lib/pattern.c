/*
 * Seeded, position-dependent patterns: every 8-byte word of a buffer is
 * splitmix64(seed, word index), so a page that moved, went stale or was
 * zeroed never passes for another one.
 */
#include <string.h>

#include "zdtmtst.h"

static inline uint64_t pattern_word(uint64_t seed, uint64_t idx)
{
	uint64_t z = seed + (idx + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	/* never a whole zero word: zero pages must not look like patterns */
	return z ? z : 1;
}

uint8_t pattern_byte(uint64_t seed, size_t off)
{
	return (uint8_t)(pattern_word(seed, off / 8) >> (8 * (off % 8)));
}

void pattern_fill(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = buf;
	size_t off = 0;

	/* Offsets are relative to buf, so its alignment does not matter. */
	for (; off + 8 <= len; off += 8) {
		uint64_t w = pattern_word(seed, off / 8);

		memcpy(p + off, &w, 8);
	}
	for (; off < len; off++)
		p[off] = pattern_byte(seed, off);
}

size_t pattern_find_bad(const void *buf, size_t len, uint64_t seed)
{
	const uint8_t *p = buf;
	size_t off = 0, i;

	for (; off + 8 <= len; off += 8) {
		uint64_t w = pattern_word(seed, off / 8), got;

		memcpy(&got, p + off, 8);
		if (got != w) {
			for (i = 0; i < 8; i++)
				if (p[off + i] != pattern_byte(seed, off + i))
					return off + i;
		}
	}
	for (; off < len; off++)
		if (p[off] != pattern_byte(seed, off))
			return off;
	return len;
}

static int is_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

void pattern_expect(const char *what, const void *buf, size_t len, uint64_t seed)
{
	const uint8_t *p = buf;
	size_t bad = pattern_find_bad(buf, len, seed), end;

	if (bad == len)
		return;
	end = bad - bad % PAGE_SIZE + PAGE_SIZE;
	if (end > len)
		end = len;
	fail("%s: byte at offset %#zx (address %p) is %#x, expected %#x%s",
	     what, bad, (void *)(p + bad), p[bad], pattern_byte(seed, bad),
	     is_zero(p + bad - bad % PAGE_SIZE, end - (bad - bad % PAGE_SIZE)) ?
	     " (the page is all zeros)" : "");
}

void pattern_expect_at(const char *what, const void *buf, size_t from, size_t to, uint64_t seed)
{
	const uint8_t *p = buf;

	for (size_t off = from; off < to; off++)
		if (p[off] != pattern_byte(seed, off))
			fail("%s: byte at offset %#zx (address %p) is %#x, expected %#x", what, off,
			     (void *)(p + off), p[off], pattern_byte(seed, off));
}

void zero_expect(const char *what, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			fail("%s: byte at offset %#zx (address %p) is %#x, expected 0",
			     what, i, (void *)(p + i), p[i]);
}
