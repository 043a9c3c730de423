/*
 * Socket I/O of the zdtm programs, each wait bounded (SOCK_IO_TIMEOUT_MS);
 * they fail() naming @what:
 *   sock_wait()  until @fd is ready for @events (POLLIN, POLLOUT)
 *   sock_get()   exactly @len bytes into @buf, then checks them against
 *                the pattern of @seed (pattern_fill)
 *   sock_eof()   the end of the stream, once @fd is readable (no byte first)
 */
#ifndef ZDTM_SOCKIO_H
#define ZDTM_SOCKIO_H

#include <stddef.h>
#include <stdint.h>

#define SOCK_IO_TIMEOUT_MS	20000

void sock_wait(int fd, short events, const char *what);
void sock_get(int fd, void *buf, size_t len, uint64_t seed, const char *what);
void sock_eof(int fd, const char *what);

#endif
