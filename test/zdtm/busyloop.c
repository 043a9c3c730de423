/*
 * A busy loop: the checkpoint interrupts a task in user mode, between any
 * two instructions.  The loop increments a counter and keeps a derived
 * value (3 * counter + 7) next to it; after SIGTERM the pair must still be
 * consistent, the counter must have moved on since readiness, and it must
 * keep counting for another 100 ms.
 */
#include <time.h>

#include "lib/zdtmtst.h"

static volatile uint64_t counter, mirror;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t ready_at, stopped_at;
	double end;

	test_init(argc, argv, NULL);

	while (counter < 1000000) {
		counter++;
		mirror = counter * 3 + 7;
	}
	ready_at = counter;
	test_daemon();
	while (!test_stopped()) {
		counter++;
		mirror = counter * 3 + 7;
	}
	stopped_at = counter;
	if (mirror != stopped_at * 3 + 7)
		fail("counter %llu and its mirror %llu disagree",
		     (unsigned long long)stopped_at, (unsigned long long)mirror);
	if (stopped_at <= ready_at)
		fail("the counter did not move: %llu at readiness, %llu at SIGTERM",
		     (unsigned long long)ready_at, (unsigned long long)stopped_at);

	end = now() + 0.1;
	while (now() < end) {
		int i;

		for (i = 0; i < 4096; i++) {
			counter++;
			mirror = counter * 3 + 7;
		}
	}
	if (counter <= stopped_at + 4096)
		fail("the counter stopped counting after SIGTERM");
	if (mirror != counter * 3 + 7)
		fail("counter and mirror disagree after counting on");
	test_msg("counted %llu before SIGTERM", (unsigned long long)stopped_at);
	pass();
}
