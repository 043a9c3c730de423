/*
 * The made-up memory of the page-server tests, shared by the image writer
 * (test_page_server_images.c), the stand-in for restore
 * (test_page_server_restore.c) and test/test_page_server.py, which keeps a
 * copy of these numbers.
 *
 * Every 8-byte word of a dumped page holds (pid << 48) | its own address,
 * so any page can be checked on its own.
 */
#ifndef TEST_PAGE_SERVER_LAYOUT_H
#define TEST_PAGE_SERVER_LAYOUT_H

#include <stdint.h>

#define PST_PAGE		4096ULL
#define PST_BASE		0x5a0000000000ULL

/* task 100 */
#define PST_FILE_VMA		PST_BASE			/* 16 pages, not lazy */
#define PST_SMALL_VMA		(PST_BASE + 0x100000)		/* 64 pages, lazy */
#define PST_BIG_VMA		(PST_BASE + 0x1000000)		/* big_pages, lazy */
#define PST_BIG_ENTRY_PAGES	256				/* entries split like CRIU's */
/* task 200 */
#define PST_T2_VMA		(PST_BASE + 0x40000000)		/* 32 pages, lazy */

static inline uint64_t pst_word(uint32_t pid, uint64_t addr)
{
	return ((uint64_t)pid << 48) | addr;
}

#endif
