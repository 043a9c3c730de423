/*
 * The threads of a process (/proc/PID/task) and the processes below it
 * (/proc/PID/task/TID/children of each thread): the one place that lists
 * them; and the one that reads a file of a process's or a thread's.
 */
#ifndef CRIU_LAZY_COMMON_PROC_TASK_H
#define CRIU_LAZY_COMMON_PROC_TASK_H

#include <stddef.h>
#include <sys/types.h>

/*
 * /proc/@pid/@name, or /proc/@pid/task/@tid/@name if @tid, read into @buf
 * (as much as fits, '\0'-terminated; a read that fails ends it there): its
 * length, or -errno of open (ENOENT: no such task).  Logs nothing.
 */
ssize_t proc_task_read(pid_t pid, pid_t tid, const char *name, char *buf, size_t size);

/*
 * What proc_each_thread() calls for each tid: 0 to go on, any other value
 * to stop the walk there, which the walk then returns (a negative errno
 * the callback logged, or a positive "found").  A caller that must tell
 * its callback's error from a failure to list notes the former in @arg.
 */
typedef int (*proc_pid_fn)(pid_t pid, void *arg);

/*
 * @fn(tid, @arg) for each thread of @pid, the leader included, in
 * /proc/@pid/task's order.  0 when @fn was called for every thread and
 * returned 0 each time, @fn's non-zero return when it stopped the walk, or,
 * when /proc/@pid/task can't be opened (ENOENT: @pid is gone), -errno, with
 * @fn never called.  Logs nothing.
 */
int proc_each_thread(pid_t pid, proc_pid_fn fn, void *arg);

/*
 * The children of every thread of @pid into *@pids (malloc'ed, the caller
 * frees it) and *@nr; a thread that ends meanwhile is passed over (its
 * children are its group's then, listed by another thread).  0, or -errno
 * with *@pids NULL: ENOMEM, or what /proc/@pid/task can't be opened with
 * (ENOENT: @pid is gone).  Logs nothing.
 */
int proc_children(pid_t pid, pid_t **pids, size_t *nr);

/*
 * The children of thread @tid of @pid alone (those it forked: a thread's
 * own list) into *@pids (malloc'ed, the caller frees it) and *@nr.  0, or
 * -errno with *@pids NULL: ENOMEM, or what its children file can't be
 * opened with (ENOENT: the thread is gone).  Logs nothing.
 */
int proc_thread_children(pid_t pid, pid_t tid, pid_t **pids, size_t *nr);

/*
 * @root and every process below it, breadth first (a parent before its
 * children), into *@pids (malloc'ed, the caller frees it) and *@nr; a
 * process that ends meanwhile is passed over with what is below it.  0, or
 * -ENOMEM with *@pids NULL.  Logs nothing.
 */
int proc_descendants(pid_t root, pid_t **pids, size_t *nr);

#endif
