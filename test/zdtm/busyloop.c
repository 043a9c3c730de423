/*
 * A busy loop: the checkpoint interrupts a task in user mode, between any
 * two instructions.  Each turn adds 1 to a counter and `step` (3, read from
 * memory every turn) to an accumulator that started at 7, so the pair must
 * always satisfy acc == 3 * counter + 7: a lost, stale or mixed-up word of
 * either (or of step) breaks that for good, whenever it happens.  After
 * SIGTERM the pair must still agree, the counter must have moved on since
 * readiness, and it must keep counting (and agreeing) for another 100 ms.
 */
#include <time.h>

#include "lib/zdtmtst.h"

#define STEP 3
#define BASE 7

static volatile uint64_t counter, acc = BASE;
static volatile uint64_t step = STEP;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void turn(void)
{
	counter++;
	acc += step;
}

static void expect_agree(const char *when)
{
	uint64_t c = counter, a = acc;

	if (a != c * STEP + BASE)
		fail("%s: counter %llu and accumulator %llu disagree (expected %llu)", when,
		     (unsigned long long)c, (unsigned long long)a,
		     (unsigned long long)(c * STEP + BASE));
}

int main(int argc, char **argv)
{
	uint64_t ready_at, stopped_at;
	double end;

	test_init(argc, argv, NULL);

	while (counter < 1000000)
		turn();
	ready_at = counter;
	test_msg("step %p", (void *)&step);
	test_daemon();
	while (!test_stopped())
		turn();
	stopped_at = counter;
	expect_agree("at SIGTERM");
	if (stopped_at <= ready_at)
		fail("the counter did not move: %llu at readiness, %llu at SIGTERM",
		     (unsigned long long)ready_at, (unsigned long long)stopped_at);

	end = now() + 0.1;
	while (now() < end) {
		int i;

		for (i = 0; i < 4096; i++)
			turn();
	}
	if (counter <= stopped_at + 4096)
		fail("the counter stopped counting after SIGTERM");
	expect_agree("after counting on");
	test_msg("counted %llu before SIGTERM", (unsigned long long)stopped_at);
	pass();
}
