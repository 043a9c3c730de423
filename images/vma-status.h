/*
 * vma_entry.status bits and the predicates dump and restore must agree on
 * (which VMAs have their pages saved, which may be restored lazily).
 */
#ifndef CRIU_LAZY_IMAGES_VMA_STATUS_H
#define CRIU_LAZY_IMAGES_VMA_STATUS_H

#include <stdbool.h>
#include <sys/mman.h>

#include "vma.pb-c.h"

#define VMA_AREA_REGULAR	(1u << 0)
#define VMA_AREA_STACK		(1u << 1)
#define VMA_AREA_VSYSCALL	(1u << 2)
#define VMA_AREA_VDSO		(1u << 3)
#define VMA_AREA_HEAP		(1u << 5)
#define VMA_FILE_PRIVATE	(1u << 6)
#define VMA_FILE_SHARED		(1u << 7)
#define VMA_ANON_SHARED		(1u << 8)
#define VMA_ANON_PRIVATE	(1u << 9)
#define VMA_AREA_SYSVIPC	(1u << 10)
#define VMA_AREA_SOCKET		(1u << 11)
#define VMA_AREA_VVAR		(1u << 12)
#define VMA_AREA_AIORING	(1u << 13)
#define VMA_AREA_MEMFD		(1u << 14)
#define VMA_AREA_SHSTK		(1u << 15)
#define VMA_AREA_GUARD		(1u << 16)
#define VMA_AREA_UPROBES	(1u << 17)
#define VMA_EXT_PLUGIN		(1u << 27)
#define VMA_UNSUPP		(1u << 31)

/* vma_entry.madv bit numbers are the MADV_* advice values themselves. */

#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#define VMA_MADV_WIPEONFORK (1ull << 18)	/* MADV_WIPEONFORK */

/*
 * A VMA whose pages may be left out of an eager restore and delivered by
 * userfaultfd: private anonymous memory that is not locked, not hugetlb,
 * and not one of the kernel's special mappings (CRIU's rule, spec 3.4).
 * Ours adds: not droppable (userfaultfd refuses it) and not
 * MADV_WIPEONFORK: a child forked while its pages are still lazy must see
 * that VMA empty, but the daemon would give it the parent's pages.
 */
static inline bool vma_is_lazy_capable(const VmaEntry *vma)
{
	if (!(vma->flags & MAP_ANONYMOUS) || !(vma->flags & MAP_PRIVATE))
		return false;
	if (vma->flags & (MAP_LOCKED | MAP_HUGETLB | MAP_DROPPABLE))
		return false;
	if (vma->has_madv && (vma->madv & VMA_MADV_WIPEONFORK))
		return false;
	return !(vma->status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL |
				VMA_AREA_GUARD));
}

/* Pages of this VMA are saved in the pagemap (spec 1.3 "Covered VMAs"). */
static inline bool vma_has_dumped_pages(const VmaEntry *vma)
{
	if (vma->status & (VMA_AREA_VVAR | VMA_AREA_VSYSCALL | VMA_AREA_UPROBES))
		return false;
	if (vma->status & (VMA_AREA_VDSO | VMA_AREA_AIORING | VMA_AREA_SHSTK))
		return true;
	if (!(vma->status & VMA_AREA_REGULAR))
		return false;
	return (vma->status & (VMA_ANON_PRIVATE | VMA_FILE_PRIVATE)) != 0;
}

#endif
