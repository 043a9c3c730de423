/*
 * The FPU/SSE/AVX state of the image as the standard-format XSAVE buffer
 * PTRACE_SETREGSET(NT_X86_XSTATE) takes (common/xsave-layout.h): the legacy
 * FXSAVE area from user_x86_fpregs_entry, XSTATE_BV at 512 (XCOMP_BV and
 * the rest of the header zero), and every extended component the CPU has
 * enabled at its CPUID offset.  A component whose length differs from what
 * this CPU needs, or state this CPU does not enable, is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/xsave-layout.h"
#include "restore/xsave-build.h"

static void put16(uint8_t *p, uint32_t v) { memcpy(p, &(uint16_t){ (uint16_t)v }, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static const char *comp_name(int comp)
{
	switch (comp) {
	case XCOMP_YMM:		return "AVX";
	case XCOMP_BNDREGS:	return "MPX BNDREGS";
	case XCOMP_BNDCSR:	return "MPX BNDCSR";
	case XCOMP_OPMASK:	return "AVX-512 opmask";
	case XCOMP_ZMM_H:	return "AVX-512 ZMM_Hi256";
	case XCOMP_HI16_ZMM:	return "AVX-512 Hi16_ZMM";
	case XCOMP_PKRU:	return "PKRU";
	default:		return "unknown";
	}
}

void rst_xsave_host_probe(struct rst_xsave_host *h)
{
	memset(h, 0, sizeof(*h));
	h->xcr0 = xsave_xcr0();
	for (size_t i = 0; i < XSAVE_NR_IMAGE_COMPS; i++) {
		int comp = xsave_image_comps[i];

		if (h->xcr0 & (1ull << comp)) {
			h->offset[comp] = xsave_comp_offset(comp);
			h->size[comp] = xsave_comp_cpuid_size(comp);
		}
	}
}

/* The image's data for @comp and its length in bytes. */
static const void *image_comp(const UserX86XsaveEntry *xs, int comp, size_t *len)
{
	switch (comp) {
	case XCOMP_YMM:	     *len = xs->n_ymmh_space * 4; return xs->ymmh_space;
	case XCOMP_BNDREGS:  *len = xs->n_bndreg_state * 8; return xs->bndreg_state;
	case XCOMP_BNDCSR:   *len = xs->n_bndcsr_state * 8; return xs->bndcsr_state;
	case XCOMP_OPMASK:   *len = xs->n_opmask_reg * 8; return xs->opmask_reg;
	case XCOMP_ZMM_H:    *len = xs->n_zmm_upper * 8; return xs->zmm_upper;
	case XCOMP_HI16_ZMM: *len = xs->n_hi16_zmm * 8; return xs->hi16_zmm;
	case XCOMP_PKRU:     *len = xs->n_pkru * 4; return xs->pkru;
	default:	     *len = 0; return NULL;
	}
}

void rst_fxsave_build(const UserX86FpregsEntry *fp, uint8_t *buf)
{
	memset(buf, 0, XSAVE_LEGACY_SIZE);
	put16(buf + FXSAVE_CWD, fp->cwd);
	put16(buf + FXSAVE_SWD, fp->swd);
	put16(buf + FXSAVE_TWD, fp->twd);
	put16(buf + FXSAVE_FOP, fp->fop);
	put64(buf + FXSAVE_RIP, fp->rip);
	put64(buf + FXSAVE_RDP, fp->rdp);
	put32(buf + FXSAVE_MXCSR, fp->mxcsr);
	put32(buf + FXSAVE_MXCSR_MASK, fp->mxcsr_mask);
	memcpy(buf + FXSAVE_ST_SPACE, fp->st_space,
	       (fp->n_st_space < FXSAVE_ST_WORDS ? fp->n_st_space : FXSAVE_ST_WORDS) * 4);
	memcpy(buf + FXSAVE_XMM_SPACE, fp->xmm_space,
	       (fp->n_xmm_space < FXSAVE_XMM_WORDS ? fp->n_xmm_space : FXSAVE_XMM_WORDS) * 4);
}

int rst_xsave_build(const UserX86FpregsEntry *fp, const struct rst_xsave_host *h,
		    uint8_t *buf, size_t size, char *err, size_t err_len)
{
	const UserX86XsaveEntry *xs = fp->xsave;
	uint64_t bv;

	if (size < XSAVE_HDR_OFFSET + XSAVE_HDR_SIZE) {
		snprintf(err, err_len, "the XSAVE buffer of this CPU is only %zu bytes", size);
		return -EINVAL;
	}
	memset(buf, 0, size);
	rst_fxsave_build(fp, buf);

	/* dumped without XSAVE: x87 and SSE state only */
	bv = xs ? xs->xstate_bv : (1ull << XCOMP_FP) | (1ull << XCOMP_SSE);
	if (bv & ~h->xcr0) {
		snprintf(err, err_len,
			 "the dumped FPU state has components 0x%llx this CPU does not enable (XCR0 0x%llx)",
			 (unsigned long long)(bv & ~h->xcr0), (unsigned long long)h->xcr0);
		return -EINVAL;
	}
	if (bv & ~XSAVE_IMAGE_MASK) {
		snprintf(err, err_len, "the dumped FPU state has unknown components 0x%llx",
			 (unsigned long long)(bv & ~XSAVE_IMAGE_MASK));
		return -EINVAL;
	}

	for (size_t i = 0; xs && i < XSAVE_NR_IMAGE_COMPS; i++) {
		int comp = xsave_image_comps[i];
		size_t len;
		const void *data = image_comp(xs, comp, &len);

		if (!(h->xcr0 & (1ull << comp)))
			continue;	/* not here, and (checked above) not in use */
		if (!len && !(bv & (1ull << comp)))
			continue;	/* dumped on a CPU without it: init state */
		if (len != h->size[comp] || len != xsave_comp_size(comp)) {
			snprintf(err, err_len,
				 "the dumped %s state (XSAVE component %d) is %zu bytes, this CPU needs %u",
				 comp_name(comp), comp, len, h->size[comp]);
			return -EINVAL;
		}
		if (h->offset[comp] < XSAVE_HDR_OFFSET + XSAVE_HDR_SIZE ||
		    h->offset[comp] + len > size) {
			snprintf(err, err_len,
				 "XSAVE component %d at offset %u does not fit the %zu-byte buffer",
				 comp, h->offset[comp], size);
			return -EINVAL;
		}
		memcpy(buf + h->offset[comp], data, len);
	}
	put64(buf + XSAVE_HDR_OFFSET, bv);
	return 0;
}
