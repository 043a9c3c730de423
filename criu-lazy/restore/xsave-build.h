/*
 * The image's FPU state as the buffer ptrace takes (xsave-build.c).  Pure
 * functions over a description of the host, so they can be unit tested
 * with any CPU's layout.
 */
#ifndef CRIU_LAZY_RESTORE_XSAVE_BUILD_H
#define CRIU_LAZY_RESTORE_XSAVE_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "core-x86.pb-c.h"

#define RST_XSAVE_COMPS 16

/* What this CPU enables and where each component goes. */
struct rst_xsave_host {
	uint64_t xcr0;
	unsigned int offset[RST_XSAVE_COMPS];	/* CPUID 0xD.i EBX */
	unsigned int size[RST_XSAVE_COMPS];	/* CPUID 0xD.i EAX */
};

void rst_xsave_host_probe(struct rst_xsave_host *h);

/* The 512-byte FXSAVE area (PTRACE_SETFPREGS). */
void rst_fxsave_build(const UserX86FpregsEntry *fp, uint8_t *buf);

/*
 * The whole standard-format XSAVE buffer of @size bytes (the size the
 * kernel's NT_X86_XSTATE regset has).  0, or -EINVAL with the reason in
 * @err.
 */
int rst_xsave_build(const UserX86FpregsEntry *fp, const struct rst_xsave_host *h,
		    uint8_t *buf, size_t size, char *err, size_t err_len);

#endif
