/*
 * Unit tests of which tasks join their process group late, once every
 * task exists (restore/tree-groups.c), and which at their creation: a
 * leader, a session leader, a member led from an ancestor (a helper too)
 * early; a sibling's or a descendant's group late; --shell-job's group
 * kept by inheritance, and every task late where an ancestor's early join
 * would have moved a task of it.  Prints "ok - NAME" or "FAIL - NAME" per
 * case; the exit status is the number of failures.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "options.h"
#include "restore/restore.h"
#include "restore/tree.h"
#include "unit.h"

#define MAX_PROCS 8

struct spec {
	pid_t pid, pgid, sid;
	int parent;
};

static struct opts opts;
static struct rst_proc procs[MAX_PROCS];
static struct rst_tree tree;

/* A tree of @n tasks (parents first), its groups planned. */
static void plan(const struct spec *s, size_t n, bool shell_job)
{
	memset(procs, 0, sizeof(procs));
	memset(&tree, 0, sizeof(tree));
	memset(&opts, 0, sizeof(opts));
	opts.shell_job = shell_job;
	for (size_t i = 0; i < n; i++) {
		procs[i].pid = s[i].pid;
		procs[i].pgid = s[i].pgid;
		procs[i].sid = s[i].sid;
		procs[i].parent = s[i].parent;
	}
	tree.o = &opts;
	tree.procs = procs;
	tree.nr = n;
	rst_tree_groups_plan(&tree);
}

/* Each of the first @n planned tasks joins late (@late) or at its creation. */
static int check_all_join(size_t n, bool late)
{
	for (size_t i = 0; i < n; i++)
		CHECK(procs[i].group_late == late, "task %d", procs[i].pid);
	return 0;
}

static int test_led_from_above(void)
{
	/* root 10; 11 leads a group with its child 12 and grandchild 13 in
	 * it; 14 leads a session with its child 15; 16 in the root's group */
	static const struct spec s[] = {
		{ 10, 10, 10, -1 }, { 11, 11, 10, 0 }, { 12, 11, 10, 1 }, { 13, 11, 10, 2 },
		{ 14, 14, 14, 0 }, { 15, 14, 14, 4 }, { 16, 10, 10, 0 },
	};

	plan(s, 7, false);
	return check_all_join(7, false);
}

static int test_led_from_aside(void)
{
	/* 12 is in its sibling 11's group; 13 in the group of its child 14;
	 * 15, a child of 12, in 11's group too: no ancestor leads it */
	static const struct spec s[] = {
		{ 10, 10, 10, -1 }, { 11, 11, 10, 0 }, { 12, 11, 10, 0 }, { 13, 14, 10, 0 },
		{ 14, 14, 10, 3 }, { 15, 11, 10, 2 },
	};

	plan(s, 6, false);
	CHECK(!procs[0].group_late && !procs[1].group_late, "");
	CHECK(procs[2].group_late, "a sibling leads it");
	CHECK(procs[3].group_late, "its child leads it");
	CHECK(!procs[4].group_late, "a leader is early");
	CHECK(procs[5].group_late, "its parent's leader is no ancestor of it");
	return 0;
}

static int test_helper(void)
{
	/* the helper 20 (a dead session leader's stand-in, a child of the
	 * root) with its member 21 in its session and group */
	static const struct spec s[] = {
		{ 10, 10, 10, -1 }, { 20, 20, 20, 0 }, { 21, 20, 20, 1 },
	};

	plan(s, 3, false);
	return check_all_join(3, false);
}

static int test_shell_job(void)
{
	/* the root 10 in the shell's group 5 (session 4): its child 11 in
	 * group 5 too keeps ours; 12 leads a group with a member 13 */
	static const struct spec s[] = {
		{ 10, 5, 4, -1 }, { 11, 5, 4, 0 }, { 12, 12, 4, 0 }, { 13, 12, 4, 2 },
	};

	plan(s, 4, true);
	return check_all_join(4, false);
}

static int test_shell_job_split(void)
{
	/* 13, of the shell's group, is a child of 12, which leads its own:
	 * an early join of 12 would move 13 out of ours before its fork */
	static const struct spec s[] = {
		{ 10, 5, 4, -1 }, { 11, 5, 4, 0 }, { 12, 12, 4, 0 }, { 13, 5, 4, 2 },
	};

	plan(s, 4, true);
	if (check_all_join(4, true))
		return -1;
	/* without --shell-job the same tree has no such task */
	plan(s, 4, false);
	CHECK(!procs[2].group_late, "");
	return 0;
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "led_from_above", test_led_from_above },
		{ "led_from_aside", test_led_from_aside },
		{ "helper", test_helper },
		{ "shell_job", test_shell_job },
		{ "shell_job_split", test_shell_job_split },
	};

	return unit_run(cases, sizeof(cases) / sizeof(cases[0]));
}
