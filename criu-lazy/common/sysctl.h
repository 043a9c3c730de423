/*
 * Text in and out of /proc/sys, which shows the namespaces (network, IPC)
 * of the process that opens it.  Neither function logs: the caller knows
 * how to name the sysctl to the user (net.ipv4.conf.lo.forwarding,
 * /proc/sys/kernel/msgmax) and which errors are normal (-ENOENT: a sysctl
 * this kernel lacks).
 */
#ifndef CRIU_LAZY_COMMON_SYSCTL_H
#define CRIU_LAZY_COMMON_SYSCTL_H

#include <stddef.h>

/* /proc/sys/@path (e.g. "kernel/msgmax") into @buf, NUL-terminated and
 * without its newline.  0 or -errno. */
int sysctl_read_text(const char *path, char *buf, size_t size);

/* @text into /proc/sys/@path.  0 or -errno (-EIO: written in part). */
int sysctl_write_text(const char *path, const char *text);

#endif
