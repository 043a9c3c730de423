/*
 * Unit tests of which VMAs a restore maps at their own address from the
 * start (restore/premap-place.c): free of our maps (a page away, far below
 * our stack), of the regions, of the parent's VMAs in place; touching
 * neighbours the kernel would merge never both; a child's VMA inherited
 * from a parent that mapped it in place is in place too; the kinds that
 * never go in place.  Prints "ok - NAME" or "FAIL - NAME" per case; the
 * exit status is the number of failures.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "common/proc-maps.h"
#include "images/vma-status.h"
#include "restore/restore.h"
#include "restore/plan.h"
#include "unit.h"

#define PAGE 4096ull
#define MiB (1ull << 20)

#define ANON	(MAP_PRIVATE | MAP_ANONYMOUS)
#define RW	(PROT_READ | PROT_WRITE)

static struct proc_vma host_maps[] = {
	{ .start = 0x555555554000, .end = 0x555555560000, .path = "/usr/bin/criu-lazy" },
	{ .start = 0x7f0000000000, .end = 0x7f0000100000, .path = "/usr/lib/libc.so.6" },
	{ .start = 0x7ffffffde000, .end = 0x7ffffffff000, .path = "[stack]" },
};
static const struct rst_plan_host host = { host_maps, 3, 40 };

/* A plan of @n VMAs (premap region high up, out of the way). */
static void plan_of(struct rst_plan *plan, struct rst_vma_plan *vp, VmaEntry *v, size_t n)
{
	memset(plan, 0, sizeof(*plan));
	plan->premap_start = 0x7ff000000000;
	plan->blob_end = 0x7ff100000000;
	plan->vmas = vp;
	plan->nr_vmas = n;
	for (size_t i = 0; i < n; i++) {
		vp[i] = (struct rst_vma_plan){ .vma = &v[i], .premap_prot = v[i].prot,
					       .premap = plan->premap_start + i * 16 * MiB };
	}
}

static VmaEntry anon(uint64_t start, uint64_t end, uint32_t prot)
{
	VmaEntry v = VMA_ENTRY__INIT;

	v.start = start;
	v.end = end;
	v.prot = prot;
	v.flags = ANON;
	v.status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
	return v;
}

static int test_free_and_near(void)
{
	VmaEntry v[] = {
		anon(0x100000000, 0x100100000, RW),		/* far from all: in place */
		anon(0x555555560000, 0x555555561000, RW),	/* right after our exe */
		anon(0x555555561000, 0x555555570000, RW),	/* a page after it: free */
		anon(0x7f0000080000, 0x7f0000200000, RW),	/* over our libc */
		anon(0x7fffff800000, 0x7fffff900000, RW),	/* within 8 MiB below our stack */
	};
	struct rst_vma_plan vp[5];
	struct rst_plan plan;

	plan_of(&plan, vp, v, 5);
	CHECK(!rst_plan_in_place(&host, NULL, &plan), "");
	CHECK(vp[0].in_place, "");
	CHECK(!vp[1].in_place, "touches our exe: the kernel could merge it with ours");
	CHECK(vp[2].in_place, "");
	CHECK(!vp[3].in_place, "");
	CHECK(!vp[4].in_place, "the task's C part still grows our stack");
	return 0;
}

static int test_regions(void)
{
	VmaEntry v[] = { anon(0x7ff000400000, 0x7ff000500000, RW) };
	struct rst_vma_plan vp[1];
	struct rst_plan plan;

	plan_of(&plan, vp, v, 1);
	CHECK(!rst_plan_in_place(&host, NULL, &plan), "");
	CHECK(!vp[0].in_place, "inside our own premap region");
	return 0;
}

/* Two touching VMAs the kernel would merge at their mmap: one in place. */
static int test_merge_neighbours(void)
{
	VmaEntry v[] = {
		anon(0x100000000, 0x100010000, RW),
		anon(0x100010000, 0x100020000, RW),	/* same: would merge */
		anon(0x100020000, 0x100021000, PROT_NONE),	/* a guard: never merges */
		anon(0x100021000, 0x100030000, RW),
	};
	struct rst_vma_plan vp[4];
	struct rst_plan plan;

	plan_of(&plan, vp, v, 4);
	CHECK(!rst_plan_in_place(&host, NULL, &plan), "");
	CHECK(vp[0].in_place && !vp[1].in_place, "%d %d", vp[0].in_place, vp[1].in_place);
	CHECK(vp[2].in_place && vp[3].in_place, "%d %d", vp[2].in_place, vp[3].in_place);
	/* filled: mapped read-write, the same as its read-write neighbour */
	plan_of(&plan, vp, v, 4);
	vp[2].premap_prot = RW;
	CHECK(!rst_plan_in_place(&host, NULL, &plan), "");
	CHECK(vp[0].in_place && !vp[1].in_place && vp[2].in_place && !vp[3].in_place,
	      "%d %d %d %d", vp[0].in_place, vp[1].in_place, vp[2].in_place, vp[3].in_place);
	return 0;
}

static int test_kinds(void)
{
	VmaEntry v[] = {
		anon(0x100000000, 0x100100000, RW),
		anon(0x110000000, 0x110100000, RW),
		anon(0x120000000, 0x120100000, RW),
		anon(0x130000000, 0x130100000, RW),
	};
	struct rst_vma_plan vp[4];
	struct rst_plan plan;

	v[0].status = VMA_AREA_REGULAR | VMA_ANON_SHARED;
	v[0].flags = MAP_SHARED | MAP_ANONYMOUS;
	v[1].flags |= MAP_GROWSDOWN;
	v[2].flags |= MAP_LOCKED;
	v[3].status |= VMA_AREA_SYSVIPC;
	plan_of(&plan, vp, v, 4);
	CHECK(!rst_plan_in_place(&host, NULL, &plan), "");
	for (int i = 0; i < 4; i++)
		CHECK(!vp[i].in_place, "VMA %d", i);
	return 0;
}

/* A child: what it inherits in place stays in place; the parent's other
 * VMAs in place and its regions are in the way. */
static int test_child(void)
{
	VmaEntry pv[] = {
		anon(0x100000000, 0x100100000, RW),
		anon(0x200000000, 0x200100000, RW),
	};
	VmaEntry cv[] = {
		anon(0x100000000, 0x100100000, RW),	/* inherited */
		anon(0x200080000, 0x200200000, RW),	/* over the parent's other one */
		anon(0x300000000, 0x300100000, RW),
	};
	struct rst_vma_plan pvp[2], cvp[3];
	struct rst_plan parent, child;

	plan_of(&parent, pvp, pv, 2);
	CHECK(!rst_plan_in_place(&host, NULL, &parent), "");
	CHECK(pvp[0].in_place && pvp[1].in_place, "");
	plan_of(&child, cvp, cv, 3);
	child.premap_start = 0x7fe000000000;
	child.blob_end = 0x7fe100000000;
	cvp[0].inherit = pvp[0].premap;
	cvp[0].inherit_idx = 0;
	child.inherits = true;
	CHECK(!rst_plan_in_place(&host, &parent, &child), "");
	CHECK(cvp[0].in_place, "the fork puts it there");
	CHECK(!cvp[1].in_place, "the parent's VMA is there until the child unmaps it");
	CHECK(cvp[2].in_place, "");
	/* inherited from the parent's slot: moved as before, not in place */
	pvp[0].in_place = false;
	plan_of(&child, cvp, cv, 3);
	child.premap_start = 0x7fe000000000;
	child.blob_end = 0x7fe100000000;
	cvp[0].inherit = pvp[0].premap;
	child.inherits = true;
	CHECK(!rst_plan_in_place(&host, &parent, &child), "");
	CHECK(!cvp[0].in_place, "");
	return 0;
}

/* A child that inherits nothing (a lazy restore's) is forked before its
 * parent maps anything: the parent's VMAs in place are not in its way,
 * the parent's regions (which it holds from the fork) still are. */
static int test_child_forked_first(void)
{
	VmaEntry pv[] = {
		anon(0x100000000, 0x100100000, RW),
		anon(0x200000000, 0x200100000, RW),
	};
	VmaEntry cv[] = {
		anon(0x100000000, 0x100100000, RW),
		anon(0x200080000, 0x200200000, RW),
		anon(0x7fd000000000, 0x7fd000100000, RW),	/* in the parent's region */
	};
	struct rst_vma_plan pvp[2], cvp[3];
	struct rst_plan parent, child;

	plan_of(&parent, pvp, pv, 2);
	parent.premap_start = 0x7fcfff000000;
	parent.blob_end = 0x7fd001000000;
	CHECK(!rst_plan_in_place(&host, NULL, &parent), "");
	CHECK(pvp[0].in_place && pvp[1].in_place, "");
	plan_of(&child, cvp, cv, 3);
	child.premap_start = 0x7fe000000000;
	child.blob_end = 0x7fe100000000;
	CHECK(!rst_plan_in_place(&host, &parent, &child), "");
	CHECK(cvp[0].in_place && cvp[1].in_place, "the parent maps them after the fork");
	CHECK(!cvp[2].in_place, "the parent's region is there from the fork");
	return 0;
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "free_and_near", test_free_and_near },
		{ "regions", test_regions },
		{ "merge_neighbours", test_merge_neighbours },
		{ "kinds", test_kinds },
		{ "child", test_child },
		{ "child_forked_first", test_child_forked_first },
	};

	return unit_run(cases, sizeof(cases) / sizeof(cases[0]));
}
