/*
 * POSIX timers, last of all (with the itimers): each created again with
 * its dumped id (prctl PR_TIMER_CREATE_RESTORE_IDS makes timer_create take
 * the id it is given), then armed with its time left.  Creating every one
 * first and arming them after keeps the time they lose to a minimum.
 */
#include <stdint.h>

#include "restorer.h"
#include "syscalls.h"

#define PR_TIMER_CREATE_RESTORE_IDS	77
#define SIGEV_THREAD_ID			4
#define SI_TIMER			(-2)

/* The kernel's struct sigevent (64 bytes on x86_64). */
struct kernel_sigevent {
	uint64_t value;
	int32_t signo;
	int32_t notify;
	int32_t tid;
	int32_t pad[11];
};

struct kernel_itimerspec {
	int64_t interval_sec, interval_nsec;
	int64_t value_sec, value_nsec;
};

static int create_timers(struct restorer_args *a, struct rst_posix_timer *t)
{
	long ret;

	ret = sys_prctl(PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0);
	if (ret)
		return rst_fail(a, RST_STEP_POSIX_TIMERS, ret, (uint64_t)t[0].id);
	for (uint32_t i = 0; i < a->nr_posix_timers; i++) {
		struct kernel_sigevent sev = {
			.value = t[i].value, .signo = t[i].signo, .notify = t[i].notify,
			.tid = (t[i].notify & SIGEV_THREAD_ID) ? t[i].tid : 0,
		};
		int32_t id = t[i].id;

		ret = sys_timer_create(t[i].clock, &sev, &id);
		if (!ret && id != t[i].id)
			ret = -17;	/* EEXIST: the kernel gave another id */
		if (ret) {
			sys_prctl(PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
			return rst_fail(a, RST_STEP_POSIX_TIMERS, ret, (uint64_t)t[i].id);
		}
	}
	ret = sys_prctl(PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
	if (ret)
		return rst_fail(a, RST_STEP_POSIX_TIMERS, ret, (uint64_t)t[0].id);
	return 0;
}

/*
 * Is @si the pending signal of a timer that will queue it itself (the
 * first one found for each such timer)?  Then it is not queued again.
 */
int rst_posix_timer_owns(struct restorer_args *a, const uint8_t *si)
{
	struct rst_posix_timer *t = (struct rst_posix_timer *)(uintptr_t)a->posix_timers;
	int32_t signo = *(const int32_t *)si, code = *(const int32_t *)(si + 8);
	int32_t timerid = *(const int32_t *)(si + 16);	/* siginfo._timer._tid */

	if (code != SI_TIMER)
		return 0;
	for (uint32_t i = 0; i < a->nr_posix_timers; i++) {
		if (t[i].fire_now && !t[i].taken && t[i].id == timerid && t[i].signo == signo) {
			t[i].taken = 1;
			return 1;
		}
	}
	return 0;
}

int rst_restore_posix_timers(struct restorer_args *a)
{
	struct rst_posix_timer *t = (struct rst_posix_timer *)(uintptr_t)a->posix_timers;

	if (!a->nr_posix_timers)
		return 0;
	if (create_timers(a, t))
		return -1;
	for (uint32_t i = 0; i < a->nr_posix_timers; i++) {
		struct kernel_itimerspec its = {
			t[i].interval_sec, t[i].interval_nsec, t[i].value_sec, t[i].value_nsec,
		};
		long ret;

		if (t[i].fire_now) {
			its.value_sec = 0;
			its.value_nsec = 1;
		}
		if (!its.value_sec && !its.value_nsec)
			continue;
		ret = sys_timer_settime(t[i].id, 0, &its, 0);
		if (ret)
			return rst_fail(a, RST_STEP_POSIX_TIMERS, ret, (uint64_t)t[i].id);
	}
	return 0;
}
