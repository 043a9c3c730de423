/*
 * Restartable sequences: glibc registers an rseq area for every thread
 * (or, with the tunable off, we register one).  After SIGTERM the
 * registration must still be in place: registering the same area again
 * fails with EBUSY (the kernel's answer for "already registered with
 * these arguments"), and the kernel keeps its cpu_id field up to date.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#ifndef RSEQ_SIG
#define RSEQ_SIG 0x53053053
#endif

static struct rseq own_area __attribute__((aligned(32)));

int main(int argc, char **argv)
{
	struct rseq *area;
	unsigned int size;
	int i, ok = 0;

	test_init(argc, argv, NULL);

	if (__rseq_size > 0) {
		area = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
		size = __rseq_size < 32 ? 32 : __rseq_size;
	} else {
		area = &own_area;
		size = sizeof(own_area);
		if (syscall(SYS_rseq, area, size, 0, RSEQ_SIG))
			fail("rseq register: %m");
	}
	/* glibc may have registered the area with a larger size than it reports */
	if (syscall(SYS_rseq, area, size, 0, RSEQ_SIG) == 0 || errno != EBUSY) {
		size = 32;
		if (syscall(SYS_rseq, area, size, 0, RSEQ_SIG) == 0 || errno != EBUSY)
			fail("cannot find the rseq registration (%m)");
	}
	test_msg("rseq area %p size %u (recorded at %p)", (void *)area, size, (void *)&size);

	test_daemon();
	test_waitsig();

	errno = 0;
	if (syscall(SYS_rseq, area, size, 0, RSEQ_SIG) == 0)
		fail("rseq is no longer registered: registering %p again succeeded",
		     (void *)area);
	if (errno != EBUSY)
		fail("rseq registration changed: registering %p again gives %s, expected EBUSY",
		     (void *)area, strerror(errno));

	for (i = 0; i < 100 && !ok; i++) {
		unsigned cpu;

		if (syscall(SYS_getcpu, &cpu, NULL, NULL))
			fail("getcpu: %m");
		ok = (area->cpu_id == cpu);
		if (!ok)
			sched_yield();
	}
	if (!ok)
		fail("rseq cpu_id %u is not updated by the kernel", area->cpu_id);
	pass();
}
