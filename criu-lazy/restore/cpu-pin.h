/*
 * The ptrace steps after each blob (finalize.c) and the resume, on one CPU.
 */
#ifndef CRIU_LAZY_RESTORE_CPU_PIN_H
#define CRIU_LAZY_RESTORE_CPU_PIN_H

#include <sched.h>
#include <stdbool.h>
#include <sys/types.h>

/* The affinity a process's threads had before rst_pin_proc(). */
struct rst_pin {
	bool pinned;
	cpu_set_t mask;
};

struct rst_tree;
struct rst_proc;

void rst_pin_start(struct rst_tree *tree);
void rst_pin_proc(struct rst_tree *tree, struct rst_proc *p);
int rst_pin_end(struct rst_tree *tree);

#endif
