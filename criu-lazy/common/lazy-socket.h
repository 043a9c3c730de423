/*
 * The lazy-pages socket's bytes, restore to daemon (CRIU's protocol,
 * spec 3.1-3.3): per process of the tree an int32 pid (the image's), then
 * its userfaultfd as SCM_RIGHTS with a one-byte payload (a zombie: -pid
 * and no fd); at the end the 32-bit word "restore finished".  Nothing
 * flows back.  Encoded here once: the restore sends it, the daemon checks
 * the word, and test/helpers/lazy_present.c plays the restore with it.
 *
 * Ours also attaches SCM_CREDENTIALS to the uffd's message, naming the
 * process by its pid in the sender's namespace: the kernel gives the
 * daemon that process's pid in its own (lazy-pages.md, "Which process
 * here").  Ancillary data leaves the byte stream as it was: CRIU's daemon,
 * which does not ask for credentials, never sees them.
 */
#ifndef CRIU_LAZY_COMMON_LAZY_SOCKET_H
#define CRIU_LAZY_COMMON_LAZY_SOCKET_H

#include <stdint.h>
#include <sys/types.h>

#define LAZY_SOCKET_NAME	"lazy-pages.socket"	/* in the work directory */
#define LAZY_RESTORE_FINISHED	0x52535446u		/* "FTSR" on the wire */

/*
 * One process's record: @pid and, if @uffd >= 0, the uffd, with
 * credentials naming @cred_pid (and our euid, egid) if it is > 0.  0, or
 * 1 when the kernel refused the credentials (a pid other than ours needs
 * CAP_SYS_ADMIN) and the uffd went without them, or -errno; logs nothing.
 */
int lazy_sock_send_task(int sock, int32_t pid, int uffd, pid_t cred_pid);

/* The "restore finished" word.  0 or -errno; logs nothing. */
int lazy_sock_send_finished(int sock);

#endif
