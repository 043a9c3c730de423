/*
 * The open file descriptors of a process (/proc/PID/fd): the one place
 * that lists them, by number, in ascending order.
 */
#ifndef CRIU_LAZY_COMMON_PROC_FD_H
#define CRIU_LAZY_COMMON_PROC_FD_H

#include <stddef.h>
#include <sys/types.h>

/*
 * The fds open in @pid (0: this process, through /proc/self, without the
 * one the walk itself holds) into *@fds (malloc'ed, the caller frees it)
 * and *@nr, ascending.  0, or -errno with *@fds NULL: ENOMEM, or what
 * /proc/@pid/fd can't be opened with (ENOENT: @pid is gone; EACCES: not
 * ours to look at).  Logs nothing.
 */
int proc_fd_list(pid_t pid, int **fds, size_t *nr);

/*
 * What proc_each_fd() calls for each fd: 0 to go on, any other value to
 * stop the walk there, which the walk then returns (as proc_pid_fn).
 */
typedef int (*proc_fd_fn)(int fd, void *arg);

/*
 * @fn(fd, @arg) for each fd of proc_fd_list(@pid), in ascending order,
 * after the directory is read and closed (@fn may open and close files).
 * 0 when @fn returned 0 for each, @fn's non-zero return when it stopped
 * the walk, or proc_fd_list()'s -errno, with @fn never called.  Logs
 * nothing.
 */
int proc_each_fd(pid_t pid, proc_fd_fn fn, void *arg);

#endif
