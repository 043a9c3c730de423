/*
 * /proc/PID/stat past the task's name, which may hold anything (spaces,
 * ')'): the state letter and the numbered fields that follow it.  The one
 * place that parses it.
 */
#ifndef CRIU_LAZY_COMMON_PROC_STAT_H
#define CRIU_LAZY_COMMON_PROC_STAT_H

#include <stddef.h>
#include <sys/types.h>

/* proc(5)'s stat, its fields numbered as there. */
struct proc_stat {
	char state;			/* field 3 */
	char comm[32];			/* field 2 without its parentheses, cut to fit */
	unsigned long long f[53];	/* f[n] = field n, n >= 4; a negative one cast */
};

/*
 * /proc/@pid/stat, or /proc/@pid/task/@tid/stat if @tid, read into @buf:
 * a pointer into it at the state letter ("S 1 4711 ..."), or NULL with
 * errno set: open's (ENOENT: no such task), else ESRCH (nothing read, or
 * no name's end: the task is on its way out).  Logs nothing.
 */
const char *proc_stat_fields(pid_t pid, pid_t tid, char *buf, size_t size);

/*
 * The text of a stat file, @buf, into @st, the fields it lacks 0: the
 * number of the last field read (52 on any kernel since 3.5, 3 for the
 * state alone; it stops at the first field that is not a number), or
 * -EINVAL if the text has no name in parentheses.  Logs nothing.
 */
int proc_stat_parse(const char *buf, struct proc_stat *st);

/* /proc/@pid/stat read and parsed: as proc_stat_parse(), or -errno as
 * proc_stat_fields() sets it. */
int proc_stat_read(pid_t pid, struct proc_stat *st);

/* The state letter ('R', 'S', 'D', 'Z', ...), or 0 if none is readable. */
char proc_stat_state(pid_t pid);

/*
 * Now, as a process's start time (field 22) counts: clock ticks since boot
 * (CLOCK_BOOTTIME, rounded down).  A process started after this call has a
 * start time no lower than it.
 */
unsigned long long proc_stat_now_ticks(void);

#endif
