/*
 * Where the restore and its tasks run: the blobs spread over our CPUs, the
 * ptrace steps after each blob (finalize.c) and the resume on one CPU.
 */
#ifndef CRIU_LAZY_RESTORE_CPU_PIN_H
#define CRIU_LAZY_RESTORE_CPU_PIN_H

#include <sched.h>
#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>

/* The affinity a process's threads had before we pinned them, and the
 * CPU its blob runs on (-1: none). */
struct rst_pin {
	bool pinned;
	cpu_set_t mask;
	int cpu;
};

/* Our scheduling policy while we wake many tasks at once. */
struct rst_burst {
	bool raised;
	int policy;
	struct sched_param param;
};

struct rst_tree;
struct rst_proc;

void rst_pin_plan(struct rst_tree *tree);
void rst_pin_one(const struct rst_proc *p);
void rst_burst_begin(struct rst_burst *b, size_t wakeups);
void rst_burst_end(struct rst_burst *b);

void rst_pin_last_steps(struct rst_tree *tree, const struct rst_proc *p);
void rst_pin_proc(struct rst_tree *tree, struct rst_proc *p);
int rst_pin_release(struct rst_tree *tree, struct rst_proc *p);
int rst_pin_end(struct rst_tree *tree);

#endif
