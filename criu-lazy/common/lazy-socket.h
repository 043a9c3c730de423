/*
 * The lazy-pages socket's bytes, restore to daemon (CRIU's protocol,
 * spec 3.1-3.3): per process of the tree an int32 pid (the image's), then
 * its userfaultfd as SCM_RIGHTS with a one-byte payload (a zombie: -pid
 * and no fd); at the end the 32-bit word "restore finished".  Nothing
 * flows back.  Encoded here once: the restore sends it, the daemon checks
 * the word, and test/helpers/lazy_present.c plays the restore with it.
 */
#ifndef CRIU_LAZY_COMMON_LAZY_SOCKET_H
#define CRIU_LAZY_COMMON_LAZY_SOCKET_H

#include <stdint.h>

#define LAZY_SOCKET_NAME	"lazy-pages.socket"	/* in the work directory */
#define LAZY_RESTORE_FINISHED	0x52535446u		/* "FTSR" on the wire */

/* One process's record: @pid and, if @uffd >= 0, the uffd.  0 or -errno;
 * logs nothing. */
int lazy_sock_send_task(int sock, int32_t pid, int uffd);

/* The "restore finished" word.  0 or -errno; logs nothing. */
int lazy_sock_send_finished(int sock);

#endif
