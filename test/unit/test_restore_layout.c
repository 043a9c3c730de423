/*
 * Unit tests of the restore's pure logic: the hole free in two layouts
 * (restore/layout.c), the vdso shape check, and the XSAVE buffer built from
 * an image (restore/xsave-build.c) against a made-up CPU.  Prints
 * "ok - NAME" or "FAIL - NAME" per case; the exit status is the number of
 * failures.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xsave-layout.h"
#include "restore/layout.h"
#include "restore/xsave-build.h"
#include "unit.h"

#define PAGE 4096ull
#define MiB (1ull << 20)
#define TASK_SIZE 0x7ffffffff000ull

static bool overlaps(uint64_t a, uint64_t len, const struct layout_range *r, size_t n,
		     uint64_t gap)
{
	for (size_t i = 0; i < n; i++)
		if (a < r[i].end + gap && r[i].start < a + len + gap)
			return true;
	return false;
}

static int test_hole_highest(void)
{
	struct layout_range busy[] = {
		{ 0x555555554000, 0x555555560000 },	/* exe */
		{ 0x7ffff7dd3000, 0x7ffff7ffe000 },	/* libs */
		{ 0x7ffffffde000, 0x7ffffffff000 },	/* stack */
		{ 0xffffffffff600000, 0xffffffffff601000 },	/* vsyscall */
	};
	uint64_t a;

	CHECK(!layout_find_hole(busy, 4, 64 * MiB, 16 * MiB, 1ull << 32, TASK_SIZE, &a), "");
	/* between the libs and the stack: 128 MiB there */
	CHECK(a == 0x7ffffffde000 - 16 * MiB - 64 * MiB, "got 0x%llx", (unsigned long long)a);
	CHECK(!overlaps(a, 64 * MiB, busy, 4, 16 * MiB), "");
	return 0;
}

/* The vsyscall page above TASK_SIZE once made the end of the widened
 * range wrap to 0 and the whole top of the address space look free. */
static int test_hole_vsyscall_wrap(void)
{
	struct layout_range busy[] = {
		{ 0x7ffffffde000, 0x7ffffffff000 },
		{ 0xffffffffff600000, 0xffffffffff601000 },
	};
	uint64_t a;

	CHECK(!layout_find_hole(busy, 2, 100 * MiB, 16 * MiB, 1ull << 32, TASK_SIZE, &a), "");
	CHECK(a + 100 * MiB + 16 * MiB <= 0x7ffffffde000, "got 0x%llx", (unsigned long long)a);
	return 0;
}

/* Two layouts merged, unsorted and overlapping ranges. */
static int test_hole_two_layouts(void)
{
	struct layout_range busy[] = {
		{ 0x7f0000000000, 0x7f0010000000 },
		{ 0x7ffc00000000, 0x7ffc00100000 },
		{ 0x7f0008000000, 0x7f0020000000 },	/* overlaps the first */
		{ 0x7ffd00000000, 0x7ffd00021000 },
		{ 0x7ff000000000, 0x7ffc00000000 },	/* fills the top but the stacks */
		{ 0x7ffc00100000, 0x7ffd00000000 },
		{ 0x7ffd00021000, TASK_SIZE },
	};
	uint64_t a;

	CHECK(!layout_find_hole(busy, 7, 1ull << 30, 16 * MiB, 1ull << 32, TASK_SIZE, &a), "");
	CHECK(!overlaps(a, 1ull << 30, busy, 7, 16 * MiB), "got 0x%llx", (unsigned long long)a);
	CHECK(a + (1ull << 30) + 16 * MiB <= 0x7ff000000000, "got 0x%llx", (unsigned long long)a);
	return 0;
}

static int test_hole_none(void)
{
	struct layout_range busy[] = { { 0, TASK_SIZE } };
	uint64_t a;

	CHECK(layout_find_hole(busy, 1, PAGE, 0, 1ull << 20, TASK_SIZE, &a) == -ENOMEM, "");
	CHECK(layout_find_hole(NULL, 0, TASK_SIZE, 0, 1ull << 20, TASK_SIZE, &a) == -ENOMEM, "");
	return 0;
}

static int test_hole_exact_fit(void)
{
	struct layout_range busy[] = { { 0x10000000, 0x10001000 }, { 0x10005000, 0x20000000 } };
	uint64_t a;

	CHECK(!layout_find_hole(busy, 2, 4 * PAGE, 0, 0x10000000, 0x20000000, &a), "");
	CHECK(a == 0x10001000, "got 0x%llx", (unsigned long long)a);
	CHECK(layout_find_hole(busy, 2, 5 * PAGE, 0, 0x10000000, 0x20000000, &a) == -ENOMEM, "");
	return 0;
}

static int test_vdso_match(void)
{
	struct layout_range ours[] = { { 0x7f10, 0x7f14 }, { 0x7f14, 0x7f16 }, { 0x7f16, 0x7f18 } };
	struct layout_range same[] = { { 0x5510, 0x5514 }, { 0x5514, 0x5516 }, { 0x5516, 0x5518 } };
	struct layout_range bigger[] = { { 0x5510, 0x5514 }, { 0x5514, 0x5517 }, { 0x5517, 0x5519 } };
	struct layout_range fewer[] = { { 0x5510, 0x5514 }, { 0x5516, 0x5518 } };
	char why[160];

	CHECK(!layout_vdso_match(ours, 3, same, 3, why, sizeof(why)), "%s", why);
	CHECK(layout_vdso_match(ours, 3, bigger, 3, why, sizeof(why)) == -EINVAL, "");
	CHECK(strstr(why, "mapping 1"), "%s", why);
	CHECK(layout_vdso_match(ours, 3, fewer, 2, why, sizeof(why)) == -EINVAL, "");
	CHECK(strstr(why, "2 vdso/vvar mappings"), "%s", why);
	return 0;
}

/* ---- XSAVE ---------------------------------------------------------------- */

static uint32_t st[32], xmm[64], ymmh[64];
static uint64_t opmask[8], zmm_upper[64], hi16[128];

static void fake_fpregs(UserX86FpregsEntry *fp, UserX86XsaveEntry *xs)
{
	user_x86_fpregs_entry__init(fp);
	user_x86_xsave_entry__init(xs);
	for (int i = 0; i < 32; i++)
		st[i] = 0x1000 + i;
	for (int i = 0; i < 64; i++)
		xmm[i] = 0x2000 + i, ymmh[i] = 0x3000 + i, zmm_upper[i] = 0x4000 + i;
	for (int i = 0; i < 128; i++)
		hi16[i] = 0x5000 + i;
	for (int i = 0; i < 8; i++)
		opmask[i] = 0x6000 + i;
	fp->cwd = 0x37f;
	fp->swd = 0x1234;
	fp->twd = 0xff;
	fp->fop = 0x55;
	fp->rip = 0x1122334455667788ull;
	fp->rdp = 0x8877665544332211ull;
	fp->mxcsr = 0x7f80;
	fp->mxcsr_mask = 0xffff;
	fp->n_st_space = 32;
	fp->st_space = st;
	fp->n_xmm_space = 64;
	fp->xmm_space = xmm;
	fp->xsave = xs;
	xs->xstate_bv = 0xe7;	/* FP SSE YMM OPMASK ZMM_H HI16 */
	xs->n_ymmh_space = 64;
	xs->ymmh_space = ymmh;
	xs->n_opmask_reg = 8;
	xs->opmask_reg = opmask;
	xs->n_zmm_upper = 64;
	xs->zmm_upper = zmm_upper;
	xs->n_hi16_zmm = 128;
	xs->hi16_zmm = hi16;
}

/* An AVX-512 CPU with the usual standard-format offsets. */
static void fake_host(struct rst_xsave_host *h)
{
	memset(h, 0, sizeof(*h));
	h->xcr0 = 0xe7;
	h->offset[2] = 576, h->size[2] = 256;
	h->offset[5] = 1088, h->size[5] = 64;
	h->offset[6] = 1152, h->size[6] = 512;
	h->offset[7] = 1664, h->size[7] = 1024;
}

static int test_xsave_layout(void)
{
	static uint8_t buf[2688];
	UserX86FpregsEntry fp;
	UserX86XsaveEntry xs;
	struct rst_xsave_host h;
	char why[200];
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;

	fake_fpregs(&fp, &xs);
	fake_host(&h);
	CHECK(!rst_xsave_build(&fp, &h, buf, sizeof(buf), why, sizeof(why)), "%s", why);
	memcpy(&v16, buf + 0, 2);
	CHECK(v16 == 0x37f, "cwd %x", v16);
	memcpy(&v16, buf + 2, 2);
	CHECK(v16 == 0x1234, "swd %x", v16);
	memcpy(&v64, buf + 8, 8);
	CHECK(v64 == 0x1122334455667788ull, "rip");
	memcpy(&v32, buf + 24, 4);
	CHECK(v32 == 0x7f80, "mxcsr %x", v32);
	CHECK(!memcmp(buf + 32, st, 128), "st");
	CHECK(!memcmp(buf + 160, xmm, 256), "xmm");
	memcpy(&v64, buf + 512, 8);
	CHECK(v64 == 0xe7, "xstate_bv %llx", (unsigned long long)v64);
	memcpy(&v64, buf + 520, 8);
	CHECK(v64 == 0, "xcomp_bv must be 0");
	CHECK(!memcmp(buf + 576, ymmh, 256), "ymmh");
	CHECK(!memcmp(buf + 1088, opmask, 64), "opmask");
	CHECK(!memcmp(buf + 1152, zmm_upper, 512), "zmm");
	CHECK(!memcmp(buf + 1664, hi16, 1024), "hi16");
	return 0;
}

static int test_xsave_refusals(void)
{
	static uint8_t buf[2688];
	UserX86FpregsEntry fp;
	UserX86XsaveEntry xs;
	struct rst_xsave_host h;
	char why[200];

	/* a component shorter than this CPU needs */
	fake_fpregs(&fp, &xs);
	fake_host(&h);
	xs.n_zmm_upper = 32;
	CHECK(rst_xsave_build(&fp, &h, buf, sizeof(buf), why, sizeof(why)) == -EINVAL, "");
	CHECK(strstr(why, "ZMM_Hi256") && strstr(why, "256 bytes") && strstr(why, "needs 512"),
	      "%s", why);

	/* AVX-512 state in use, restored on an AVX2-only CPU */
	fake_fpregs(&fp, &xs);
	h.xcr0 = 0x7;
	CHECK(rst_xsave_build(&fp, &h, buf, sizeof(buf), why, sizeof(why)) == -EINVAL, "");
	CHECK(strstr(why, "does not enable"), "%s", why);

	/* ... but fine when that state is in its init state */
	xs.xstate_bv = 0x7;
	CHECK(!rst_xsave_build(&fp, &h, buf, 1088, why, sizeof(why)), "%s", why);

	/* dumped on an AVX2 CPU (no AVX-512 arrays), restored on AVX-512 */
	fake_fpregs(&fp, &xs);
	fake_host(&h);
	xs.xstate_bv = 0x7;
	xs.n_opmask_reg = xs.n_zmm_upper = xs.n_hi16_zmm = 0;
	CHECK(!rst_xsave_build(&fp, &h, buf, sizeof(buf), why, sizeof(why)), "%s", why);

	/* a buffer too small for the components */
	fake_fpregs(&fp, &xs);
	CHECK(rst_xsave_build(&fp, &h, buf, 1500, why, sizeof(why)) == -EINVAL, "");
	CHECK(strstr(why, "does not fit"), "%s", why);
	return 0;
}

static int test_xsave_no_xsave_image(void)
{
	static uint8_t buf[1088];
	UserX86FpregsEntry fp;
	UserX86XsaveEntry xs;
	struct rst_xsave_host h;
	char why[200];
	uint64_t bv;

	fake_fpregs(&fp, &xs);
	fake_host(&h);
	fp.xsave = NULL;
	CHECK(!rst_xsave_build(&fp, &h, buf, sizeof(buf), why, sizeof(why)), "%s", why);
	memcpy(&bv, buf + 512, 8);
	CHECK(bv == 3, "xstate_bv %llx", (unsigned long long)bv);
	return 0;
}

/* The real CPU: its probe agrees with the fixed sizes of the images. */
static int test_xsave_host_probe(void)
{
	struct rst_xsave_host h;

	rst_xsave_host_probe(&h);
	for (size_t i = 0; i < XSAVE_NR_IMAGE_COMPS; i++) {
		int c = xsave_image_comps[i];

		if (h.xcr0 & (1ull << c))
			CHECK(h.size[c] == xsave_comp_size(c) && h.offset[c] >= 576,
			      "component %d: size %u offset %u", c, h.size[c], h.offset[c]);
	}
	return 0;
}

int main(void)
{
	static const struct unit_case cases[] = {
		{ "hole_highest", test_hole_highest },
		{ "hole_vsyscall_wrap", test_hole_vsyscall_wrap },
		{ "hole_two_layouts", test_hole_two_layouts },
		{ "hole_none", test_hole_none },
		{ "hole_exact_fit", test_hole_exact_fit },
		{ "vdso_match", test_vdso_match },
		{ "xsave_layout", test_xsave_layout },
		{ "xsave_refusals", test_xsave_refusals },
		{ "xsave_no_xsave_image", test_xsave_no_xsave_image },
		{ "xsave_host_probe", test_xsave_host_probe },
	};

	return unit_run(cases, sizeof(cases) / sizeof(cases[0]));
}
