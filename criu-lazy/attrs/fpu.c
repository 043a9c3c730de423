/*
 * A thread's FPU/SSE/AVX state, put back by the thread itself in the
 * blob: the restore process builds the standard-format XSAVE image of the
 * dump (restore/xsave-build.c) in the thread's args, and the thread loads
 * it with XRSTOR (pie/threads.c) before it parks.  Nothing the blob runs
 * afterwards touches these registers (it is built with
 * -mgeneral-regs-only; syscalls and ptrace stops keep them), so the state
 * is the thread's when it is let go, and the restore process needs no
 * PTRACE_SETREGSET per thread.
 *
 * XRSTOR gets the components the images can carry (XCR0 & XSAVE_IMAGE_MASK);
 * one clear in the image's XSTATE_BV is put in its init state, as the
 * kernel's regset does.  It faults on an MXCSR with bits this CPU lacks
 * where ptrace refuses one: checked here first.  A CPU without XSAVE, and
 * a thread whose PKRU locks key 0, keep the ptrace path (restore/finalize.c).
 *
 * The registers themselves (and fs/gs base) are still set by ptrace at the
 * final stop, like the leader's: see restore.md for why an rt_sigreturn
 * of its own does not spare a thread that stop.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "attrs/task-attr.h"
#include "common/log.h"
#include "common/xsave-layout.h"
#include "restore/xsave-build.h"

#define XSAVE_ALIGN	64

struct fpu_host {
	bool probed;
	struct rst_xsave_host xs;
	size_t size;		/* the buffer XRSTOR reads: up to the last image component */
	uint32_t mxcsr_mask;
};

/* Once per restore, in the restore process (args_size runs at plan time),
 * so the forked tasks inherit it: each CPUID is a trip to the hypervisor
 * (0.1 ms in all on the test VM), which stage 2's image worker takes in a
 * tree (attr_fpu_host_probe()). */
static const struct fpu_host *fpu_host(void)
{
	static struct fpu_host h;
	static uint8_t fx[512] __attribute__((aligned(16)));

	if (h.probed)
		return &h;
	h.probed = true;
	rst_xsave_host_probe(&h.xs);
	if (!h.xs.xcr0)
		return &h;
	h.size = XSAVE_HDR_OFFSET + XSAVE_HDR_SIZE;
	for (int c = 2; c < RST_XSAVE_COMPS; c++)
		if ((h.xs.xcr0 & XSAVE_IMAGE_MASK & (1ull << c)) &&
		    h.xs.offset[c] + h.xs.size[c] > h.size)
			h.size = h.xs.offset[c] + h.xs.size[c];
	__asm__ volatile("fxsave64 %0" : "=m"(fx));
	memcpy(&h.mxcsr_mask, fx + FXSAVE_MXCSR_MASK, sizeof(h.mxcsr_mask));
	if (!h.mxcsr_mask)
		h.mxcsr_mask = 0xffbf;	/* the architectural default */
	return &h;
}

/*
 * The thread loads it itself: with XSAVE, and unless its PKRU denies
 * access to protection key 0 (the blob's own memory, which the thread
 * still reads and writes after the XRSTOR; the kernel checks PKRU on the
 * syscalls' user accesses too).
 */
void attr_fpu_host_probe(void)
{
	fpu_host();
}

bool attr_fpu_by_blob(const CoreEntry *core)
{
	const UserX86XsaveEntry *xs = core->thread_info->fpregs->xsave;

	if (!fpu_host()->xs.xcr0)
		return false;
	return !xs || !(xs->xstate_bv & (1ull << XCOMP_PKRU)) || !xs->n_pkru ||
	       !(xs->pkru[0] & 3);
}

static size_t fpu_args_size(const struct rst_images *ri, const CoreEntry *core)
{
	const struct fpu_host *h = fpu_host();

	return h->xs.xcr0 ? h->size + XSAVE_ALIGN : 0;
}

static int fpu_args(struct attr_rst *r)
{
	const struct fpu_host *h = fpu_host();
	const UserX86FpregsEntry *fp = r->core->thread_info->fpregs;
	uint8_t *buf;
	char why[200];
	int ret;

	if (!attr_fpu_by_blob(r->core))
		return 0;	/* by ptrace, at the final stop */
	if (fp->mxcsr & ~h->mxcsr_mask)
		return attr_rst_err(r, EINVAL,
				    "core-%d.img: MXCSR 0x%x has bits this CPU does not support (mask 0x%x)",
				    r->tid, fp->mxcsr, h->mxcsr_mask);
	buf = attr_args_alloc(r, h->size + XSAVE_ALIGN);
	buf = (uint8_t *)(((uintptr_t)buf + XSAVE_ALIGN - 1) & ~(uintptr_t)(XSAVE_ALIGN - 1));
	ret = rst_xsave_build(fp, &h->xs, buf, h->size, why, sizeof(why));
	if (ret)
		return attr_rst_err(r, -ret, "core-%d.img: %s", r->tid, why);
	r->thread->xsave = (uint64_t)(uintptr_t)buf;
	r->thread->xsave_mask = h->xs.xcr0 & XSAVE_IMAGE_MASK;
	return 0;
}

const struct task_attr attr_fpu = {
	.name = "fpu",
	.scope = ATTR_THREAD,
	.args_size = fpu_args_size,
	.restore = { [ATTR_RST_BLOB] = fpu_args },
};
