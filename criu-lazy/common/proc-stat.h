/*
 * /proc/PID/stat past the task's name, which may hold anything (spaces,
 * ')'): the state letter and the numbered fields that follow it.
 */
#ifndef CRIU_LAZY_COMMON_PROC_STAT_H
#define CRIU_LAZY_COMMON_PROC_STAT_H

#include <stddef.h>
#include <sys/types.h>

/*
 * /proc/@pid/stat, or /proc/@pid/task/@tid/stat if @tid, read into @buf:
 * a pointer into it at the state letter ("S 1 4711 ..."), or NULL with
 * errno set: open's (ENOENT: no such task), else ESRCH (nothing read, or
 * no name's end: the task is on its way out).  Logs nothing.
 */
const char *proc_stat_fields(pid_t pid, pid_t tid, char *buf, size_t size);

/* The state letter ('R', 'S', 'D', 'Z', ...), or 0 if none is readable. */
char proc_stat_state(pid_t pid);

#endif
