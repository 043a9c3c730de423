/*
 * The x86_64 XSAVE layout that dump and restore agree on.
 *
 * The kernel's NT_X86_XSTATE regset (PTRACE_GETREGSET / SETREGSET) and the
 * FPU part of a signal frame both use the *standard* (non-compacted) XSAVE
 * format:
 *
 *     0    512-byte legacy FXSAVE area (x87, MXCSR, XMM0-15)
 *   464      inside it: struct _fpx_sw_bytes (software-reserved, 48 bytes):
 *            magic1, extended_size, xfeatures, xstate_size
 *   512    64-byte XSAVE header: XSTATE_BV (u64) at 512, XCOMP_BV at 520
 *   576+   extended components, component i at the offset CPUID leaf 0xD
 *          sub-leaf i reports in EBX (its size in EAX)
 *
 * In the images (user_x86_xsave_entry) every component the CPU has enabled
 * in XCR0 is stored with a fixed length (the sizes below, equal to what
 * CPUID reports on every CPU that has the component), whether or not its bit
 * is set in xstate_bv.  A component that is enabled but whose bit is clear
 * in xstate_bv is in its init state; its bytes are whatever the kernel
 * returned (zeros).  A restorer rebuilds the buffer by laying out the legacy
 * area from user_x86_fpregs_entry, writing xstate_bv at 512, and copying
 * each component to xsave_comp_offset(); the buffer size is
 * xsave_user_size().
 *
 * In an rt_sigreturn frame the kernel also checks the software bytes at
 * 464: magic1 = XSAVE_FP_MAGIC1, extended_size = xstate_size + 4,
 * xfeatures = the components present (XCR0 & XSAVE_IMAGE_MASK is enough),
 * xstate_size = xsave_user_size(); and the u32 XSAVE_FP_MAGIC2 right after
 * xstate_size bytes.  The buffer must be 64-byte aligned.
 *
 * Components 3 and 4 (MPX) and 9 (PKRU) are listed for completeness; the
 * supervisor components (CET 11/12) are not part of the user buffer.
 */
#ifndef CRIU_LAZY_COMMON_XSAVE_LAYOUT_H
#define CRIU_LAZY_COMMON_XSAVE_LAYOUT_H

#include <cpuid.h>
#include <stdbool.h>
#include <stdint.h>

#define XSAVE_LEGACY_SIZE	512	/* FXSAVE area */
#define XSAVE_HDR_OFFSET	512	/* XSAVE header (XSTATE_BV, XCOMP_BV) */
#define XSAVE_HDR_SIZE		64
#define XSAVE_SW_BYTES_OFFSET	464	/* struct _fpx_sw_bytes in the legacy area */
#define XSAVE_FP_MAGIC1		0x46505853u	/* sw_bytes.magic1 in a signal frame */
#define XSAVE_FP_MAGIC2		0x46505845u	/* u32 right after xstate_size bytes */

/* Legacy (FXSAVE) area offsets */
#define FXSAVE_CWD		0	/* u16 */
#define FXSAVE_SWD		2	/* u16 */
#define FXSAVE_TWD		4	/* u16 (abridged tag word, low byte) */
#define FXSAVE_FOP		6	/* u16 */
#define FXSAVE_RIP		8	/* u64 */
#define FXSAVE_RDP		16	/* u64 */
#define FXSAVE_MXCSR		24	/* u32 */
#define FXSAVE_MXCSR_MASK	28	/* u32 */
#define FXSAVE_ST_SPACE		32	/* 8 x 16 bytes = 32 u32 words */
#define FXSAVE_XMM_SPACE	160	/* 16 x 16 bytes = 64 u32 words */
#define FXSAVE_ST_WORDS		32
#define FXSAVE_XMM_WORDS	64

/* XSAVE state components (bit numbers in XCR0 and XSTATE_BV) */
enum xsave_comp {
	XCOMP_FP	= 0,	/* x87, in the legacy area */
	XCOMP_SSE	= 1,	/* XMM + MXCSR, in the legacy area */
	XCOMP_YMM	= 2,	/* upper halves of YMM0-15 -> ymmh_space */
	XCOMP_BNDREGS	= 3,	/* MPX BND0-3 -> bndreg_state */
	XCOMP_BNDCSR	= 4,	/* MPX BNDCFGU/BNDSTATUS -> bndcsr_state */
	XCOMP_OPMASK	= 5,	/* k0-k7 -> opmask_reg */
	XCOMP_ZMM_H	= 6,	/* upper 256 bits of ZMM0-15 -> zmm_upper */
	XCOMP_HI16_ZMM	= 7,	/* ZMM16-31 -> hi16_zmm */
	XCOMP_PKRU	= 9,	/* PKRU -> pkru */
};

/* Fixed component sizes in bytes (spec 2.6), indexed by component number. */
static inline unsigned int xsave_comp_size(int comp)
{
	switch (comp) {
	case XCOMP_YMM:		return 256;
	case XCOMP_BNDREGS:	return 64;
	case XCOMP_BNDCSR:	return 64;
	case XCOMP_OPMASK:	return 64;
	case XCOMP_ZMM_H:	return 512;
	case XCOMP_HI16_ZMM:	return 1024;
	case XCOMP_PKRU:	return 8;
	default:		return 0;
	}
}

/* The extended components stored in user_x86_xsave_entry, in field order. */
static const int xsave_image_comps[] = {
	XCOMP_YMM, XCOMP_BNDREGS, XCOMP_BNDCSR, XCOMP_OPMASK,
	XCOMP_ZMM_H, XCOMP_HI16_ZMM, XCOMP_PKRU,
};
#define XSAVE_NR_IMAGE_COMPS (sizeof(xsave_image_comps) / sizeof(xsave_image_comps[0]))

/* Mask of all components the images can carry (FP, SSE and the above). */
#define XSAVE_IMAGE_MASK ((1ull << XCOMP_FP) | (1ull << XCOMP_SSE) | \
			  (1ull << XCOMP_YMM) | (1ull << XCOMP_BNDREGS) | \
			  (1ull << XCOMP_BNDCSR) | (1ull << XCOMP_OPMASK) | \
			  (1ull << XCOMP_ZMM_H) | (1ull << XCOMP_HI16_ZMM) | \
			  (1ull << XCOMP_PKRU))

/* CPU has XSAVE enabled by the OS (CPUID.1:ECX.OSXSAVE[bit 27]). */
static inline bool xsave_os_enabled(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return false;
	return (c >> 27) & 1;
}

/* XCR0: the user state components the OS has enabled (0 without XSAVE). */
static inline uint64_t xsave_xcr0(void)
{
	uint32_t lo, hi;

	if (!xsave_os_enabled())
		return 0;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

/* Offset of a component in the standard format: CPUID 0xD.comp EBX. */
static inline unsigned int xsave_comp_offset(int comp)
{
	unsigned int a, b, c, d;

	if (comp < 2)
		return 0;	/* inside the legacy area */
	__cpuid_count(0xd, comp, a, b, c, d);
	return b;
}

/* Size CPUID reports for a component: CPUID 0xD.comp EAX. */
static inline unsigned int xsave_comp_cpuid_size(int comp)
{
	unsigned int a, b, c, d;

	__cpuid_count(0xd, comp, a, b, c, d);
	return a;
}

/*
 * Size of the standard-format buffer for the components enabled in XCR0:
 * CPUID 0xD.0 EBX.  This is also the kernel's xstate_size in a signal frame.
 */
static inline unsigned int xsave_user_size(void)
{
	unsigned int a, b, c, d;

	__cpuid_count(0xd, 0, a, b, c, d);
	return b;
}

#endif
