/*
 * The kernel keeps a CPU latency request as long as the file that made it
 * is open (Documentation/power/pm_qos_interface.rst): writing a 32-bit 0
 * asks that no CPU take longer than 0 us to leave its idle state, which
 * every cpuidle governor answers with its polling state.  Each task of a
 * restore closes the copy it inherits with the rest of our fds (fds.c),
 * and the helpers we exec do not get it (O_CLOEXEC): the request ends with
 * the restore, or sooner, when it lets it go.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "common/cpu-latency.h"

int cpu_latency_hold(void)
{
	const int32_t no_latency_us = 0;
	int fd = open(CPU_LATENCY_DEV, O_WRONLY | O_CLOEXEC);
	int err;

	if (fd < 0)
		return -errno;
	if (write(fd, &no_latency_us, sizeof(no_latency_us)) == sizeof(no_latency_us))
		return fd;
	err = errno ?: EIO;
	close(fd);
	return -err;
}

void cpu_latency_release(int fd)
{
	if (fd >= 0)
		close(fd);
}
