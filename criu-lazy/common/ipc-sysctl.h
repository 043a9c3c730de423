/*
 * The IPC sysctls of a namespace (ipcns-var.img): read at dump, written
 * back at restore, both from a thread inside that namespace, since
 * /proc/sys/kernel/sem, msg*, shm* and the fs/mqueue sysctls show the IPC
 * namespace of whoever reads them.
 */
#ifndef CRIU_LAZY_COMMON_IPC_SYSCTL_H
#define CRIU_LAZY_COMMON_IPC_SYSCTL_H

#include <stdbool.h>

#include "ipc-var.pb-c.h"

/* Fill @e (sem_ctls: 4 values in @sem); a *_next_id of -1 (unset: the
 * kernel refuses to be given -1) is left out.  0 or -errno (logged). */
int ipc_sysctl_read(IpcVarEntry *e, uint32_t sem[4]);

/* Write @e back: the limits, or (@next_ids) what must come after the
 * objects are made: the *_next_id present (each creation consumes them)
 * and shm_rmid_forced (set, it would destroy each segment the restore
 * fills as it detaches).  0 or -errno (logged, naming the sysctl). */
int ipc_sysctl_write(const IpcVarEntry *e, bool next_ids);

/* @text into /proc/sys/@path (e.g. "kernel/shm_next_id").  0 or -errno
 * (logged, naming the file and the text). */
int ipc_sysctl_write_text(const char *path, const char *text);

#endif
