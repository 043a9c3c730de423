/* Where each VMA of a process is premapped and where its blob goes (struct rst_plan). */
#ifndef CRIU_LAZY_RESTORE_PLAN_H
#define CRIU_LAZY_RESTORE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "restore/restore.h"

/* premap-plan.c: what every plan of a restore starts from, read once (the
 * restore process's own layout: every task starts as a fork of it) */
struct proc_vma;
struct rst_plan_host {
	struct proc_vma *maps;
	size_t nr_maps;
	uint32_t cap_last_cap;
};
int rst_plan_host_read(struct rst_plan_host *h);
void rst_plan_host_free(struct rst_plan_host *h);
int rst_plan_build(const struct opts *o, const struct rst_plan_host *h,
		   const struct rst_images *ri, const struct rst_plan *parent,
		   struct rst_plan *plan);
void rst_plan_free(struct rst_plan *plan);

/* premap-place.c: which VMAs are mapped at their own address from the start */
int rst_plan_in_place(const struct rst_plan_host *h, const struct rst_plan *parent,
		      struct rst_plan *plan);
/* The dumped advice (VmaEntry.madv bits) a VMA mapped in place takes at
 * once, so that a neighbour in place too with other advice is never merged
 * with it; the blob applies the rest with the protections. */
uint64_t rst_vma_early_advice(const VmaEntry *v);
/* Where fill @f goes in the task, its VMA mapped (@vma: an index that only
 * grows, 0 for the first fill; the fills ascend). */
uint64_t rst_fill_at(const struct rst_plan *plan, size_t *vma, const struct rst_fill *f);

/* tree-load.c: the plan of every live process */
int rst_tree_plan(struct rst_tree *tree);

#endif
