/*
 * Private to the restorer blob: the steps restorer_main() runs, one file
 * each where they are more than a few lines.  A step returns 0 or records
 * its failure in the args with rst_fail() and returns -1.
 */
#ifndef CRIU_LAZY_PIE_RESTORER_H
#define CRIU_LAZY_PIE_RESTORER_H

#include <stdint.h>

#include "restorer-args.h"

#define RST_HIDDEN __attribute__((visibility("hidden")))

/* Record that @step failed with the kernel's return value @ret (a negative
 * errno) on the object at @addr.  Always returns -1. */
static inline int rst_fail(struct restorer_args *a, int step, long ret, uint64_t addr)
{
	a->fail_step = step;
	a->fail_errno = ret < 0 ? (int32_t)-ret : 0;
	a->fail_addr = addr;
	a->status = RST_STATUS_FAILED;
	return -1;
}

int rst_vdso_move(struct restorer_args *a) RST_HIDDEN;
int rst_restore_posix_timers(struct restorer_args *a) RST_HIDDEN;
int rst_posix_timer_owns(struct restorer_args *a, const uint8_t *si) RST_HIDDEN;
/* The same for a step of one thread's own state. */
static inline int rst_thread_fail(struct rst_thread_args *t, int step, long ret, uint64_t addr)
{
	t->fail_step = step;
	t->fail_errno = ret < 0 ? (int32_t)-ret : 0;
	t->fail_addr = addr;
	t->status = RST_STATUS_FAILED;
	return -1;
}

/* A thread's failure becomes the blob's, naming the thread. */
static inline int rst_adopt_failure(struct restorer_args *a, const struct rst_thread_args *t)
{
	a->fail_tid = t->tid;
	a->fail_step = t->fail_step;
	a->fail_errno = t->fail_errno;
	a->fail_addr = t->fail_addr;
	a->status = RST_STATUS_FAILED;
	return -1;
}

int rst_restore_creds(struct rst_thread_args *th) RST_HIDDEN;
int rst_restore_seccomp(struct rst_thread_args *t) RST_HIDDEN;

/* threads.c */
int rst_threads_create(struct restorer_args *a) RST_HIDDEN;
int rst_threads_wait(struct restorer_args *a) RST_HIDDEN;
int rst_threads_trace(struct restorer_args *a) RST_HIDDEN;
int rst_thread_restore(struct restorer_args *a, struct rst_thread_args *t) RST_HIDDEN;

/* entry.S: clone3(@ca, @size); the child runs @fn(@arg) on the new stack. */
long rst_clone3_thread(void *ca, uint64_t size, void (*fn)(struct rst_thread_args *),
		       struct rst_thread_args *arg) RST_HIDDEN;

/* Lazy restore (issue 3), see uffd.c.  All are no-ops when a->lazy.sock < 0. */
int rst_uffd_open(struct restorer_args *a) RST_HIDDEN;
int rst_uffd_register(struct restorer_args *a, const struct rst_vma *v) RST_HIDDEN;
int rst_uffd_send(struct restorer_args *a) RST_HIDDEN;

#endif
