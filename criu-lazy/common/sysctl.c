/*
 * One reader and one writer of /proc/sys for the IPC sysctls
 * (ipc-sysctl.c) and the network ones (net/net-conf.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/sysctl.h"

/* a descriptor or -errno */
static int open_sysctl(const char *path, int flags)
{
	char full[256];
	int fd;

	if (snprintf(full, sizeof(full), "/proc/sys/%s", path) >= (int)sizeof(full))
		return -ENAMETOOLONG;
	fd = open(full, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int sysctl_read_text(const char *path, char *buf, size_t size)
{
	int fd = open_sysctl(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = read(fd, buf, size - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n < 0)
		return n;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int sysctl_write_text(const char *path, const char *text)
{
	size_t len = strlen(text);
	int fd = open_sysctl(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = write(fd, text, len);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n < 0)
		return n;
	return (size_t)n == len ? 0 : -EIO;
}
