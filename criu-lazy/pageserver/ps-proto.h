/*
 * The page-server wire protocol, CRIU's (spec section 4), so that either
 * end can be CRIU's.
 *
 * Every message starts with one 32-byte header in host byte order.  A lazy
 * client sends GET {nr_pages n, vaddr = dump-time address, dst_id = the
 * image pid} and gets back a header {cmd ADD_F | PE_PRESENT << 16, nr_pages
 * m (1 <= m <= n), vaddr and dst_id echoed} followed by m pages.  CLOSE is
 * answered with an int32 status (0).  There is no hello and no version:
 * a request the server does not like ends the session without a word.
 *
 * The receiving side of `dump --page-server` (OPEN2, ADD_F, ...) uses
 * dst_id = (id << 8) | type; GET uses the bare pid.
 *
 * Our own extension (Documentation/lazy-pages.md, "Shared memory from a
 * page server"): CRIU's GET reaches a process's private memory only (its
 * server looks the bare pid up among the dumped processes), so shared
 * memory has a command of its own, GET_SHMEM, with dst_id = (shmid << 8) |
 * PS_DST_SHMEM, vaddr = the offset in the object, and the same reply as a
 * GET.  A client sends it only to a server that said it serves it in its
 * answer to FEATURES; and FEATURES goes out only on the daemon's second
 * connection, which CRIU's server (one connection) never serves: it resets
 * it, as it did before, and the daemon knows it speaks to a CRIU peer.
 */
#ifndef CRIU_LAZY_PAGESERVER_PS_PROTO_H
#define CRIU_LAZY_PAGESERVER_PS_PROTO_H

#include <stdbool.h>
#include <stdint.h>

struct page_server_iov {
	uint32_t cmd;		/* bits 0-15 command, 16-31 PE_* flags (ADD_F) */
	uint32_t pad;		/* alignment hole: sent as 0, ignored */
	uint64_t nr_pages;
	uint64_t vaddr;
	uint64_t dst_id;
};

_Static_assert(sizeof(struct page_server_iov) == 32, "page_server_iov is 32 bytes on the wire");

#define PS_IOV_ADD		1
#define PS_IOV_HOLE		2
#define PS_IOV_OPEN		3
#define PS_IOV_OPEN2		4
#define PS_IOV_PARENT		5
#define PS_IOV_ADD_F		6
#define PS_IOV_GET		7
#define PS_IOV_CLOSE		0x1023
#define PS_IOV_FORCE_CLOSE	0x1024
/* criu-lazy's own ('L' in the high byte): no CRIU peer knows them */
#define PS_IOV_FEATURES		0x4c01	/* vaddr: feature bits; answered the same way */
#define PS_IOV_GET_SHMEM	0x4c02	/* GET of shared memory object (dst_id) */

/* FEATURES bits: the client's offer, the server's answer (a subset) */
#define PS_FEAT_SHMEM		(1ULL << 0)	/* GET_SHMEM served */

#define PS_CMD_BITS		16
#define PS_CMD_MASK		((1u << PS_CMD_BITS) - 1)

/* PE_* flags as they travel in the high half of cmd (same values as pagemap.h) */
#define PS_PE_PARENT		0x1
#define PS_PE_LAZY		0x2
#define PS_PE_PRESENT		0x4

/* The reply to a GET: ADD_F carrying present pages (0x00040006). */
#define PS_GET_REPLY_CMD	(PS_IOV_ADD_F | (PS_PE_PRESENT << PS_CMD_BITS))

#define PS_PAGE_SIZE		4096ULL

/* GETs asking for more than this (4 GiB) are not requests but garbage. */
#define PS_GET_MAX_PAGES	(1ULL << 20)

static inline uint32_t ps_cmd_command(uint32_t cmd)
{
	return cmd & PS_CMD_MASK;
}

static inline uint32_t ps_cmd_flags(uint32_t cmd)
{
	return cmd >> PS_CMD_BITS;
}

/* dst_id of the image-writing commands: (id << 8) | type */
enum ps_dst_type {
	PS_DST_NONE = 0,
	PS_DST_TASK = 1,	/* pagemap-PID.img */
	PS_DST_SHMEM = 2,	/* pagemap-shmem-SHMID.img */
};

static inline uint64_t ps_dst_encode(enum ps_dst_type type, uint64_t id)
{
	return (id << 8) | type;
}

/* The type of a dst_id, old CRIU type bytes included; PS_DST_NONE if unknown. */
static inline enum ps_dst_type ps_dst_type(uint64_t dst_id)
{
	switch (dst_id & 0xff) {
	case 1: case 10: case 11: case 16: case 17:
		return PS_DST_TASK;
	case 2: case 27: case 28: case 29: case 32: case 33: case 34:
		return PS_DST_SHMEM;
	default:
		return PS_DST_NONE;
	}
}

static inline uint64_t ps_dst_id(uint64_t dst_id)
{
	return dst_id >> 8;
}

/* "GET", "CLOSE", ... or NULL for a number that is no command. */
const char *ps_cmd_name(uint32_t command);

#endif
