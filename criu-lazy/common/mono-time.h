/*
 * CLOCK_MONOTONIC in milliseconds, microseconds or nanoseconds: every
 * deadline of a bounded wait, every duration logged or counted (a wall clock set back
 * or forward must neither end a wait early nor stretch it).
 */
#ifndef CRIU_LAZY_COMMON_MONO_TIME_H
#define CRIU_LAZY_COMMON_MONO_TIME_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

static inline int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static inline int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static inline int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleep @ms milliseconds in all, whatever signal handlers interrupt. */
static inline void mono_sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

#endif
