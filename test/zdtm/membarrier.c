/*
 * membarrier registrations: register every kind this kernel offers
 * (private expedited, its sync-core and rseq flavours, global expedited).
 * After the restore MEMBARRIER_CMD_GET_REGISTRATIONS must give the same
 * mask, and the private expedited barrier, which fails with EPERM in an
 * unregistered process, must work.
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#ifndef MEMBARRIER_CMD_GET_REGISTRATIONS
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)
#endif

static long membarrier(int cmd)
{
	return syscall(__NR_membarrier, cmd, 0, 0);
}

int main(int argc, char **argv)
{
	static const int kinds[] = {
		MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
		MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
		MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
		MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
	};
	static volatile long before;
	long supported, after;

	test_init(argc, argv, NULL);
	supported = membarrier(MEMBARRIER_CMD_QUERY);
	if (supported < 0)
		fail("MEMBARRIER_CMD_QUERY: %m");
	if (!(supported & MEMBARRIER_CMD_GET_REGISTRATIONS))
		fail("this kernel cannot report membarrier registrations (Linux 6.3+)");
	if (!(supported & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED))
		fail("no private expedited membarrier on this kernel");
	for (unsigned int i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if ((supported & kinds[i]) && membarrier(kinds[i]))
			fail("membarrier register %#x: %m", kinds[i]);
	before = membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS);
	if (before <= 0)
		fail("MEMBARRIER_CMD_GET_REGISTRATIONS gave %ld: %m", before);
	test_msg("registrations %#lx recorded at %p", before, (void *)&before);

	test_daemon();
	test_waitsig();

	after = membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS);
	if (after != before)
		fail("membarrier registrations are %#lx after the restore, expected %#lx",
		     after, before);
	if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED))
		fail("private expedited membarrier after the restore: %m");
	pass();
}
