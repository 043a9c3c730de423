/*
 * Helpers shared by the lazy_* programs: regions between guard pages, the
 * premise check (the restore really left the pages lazy), and a watchdog
 * that turns a task hung in a fault into a FAIL instead of a hung suite.
 *
 * The premise comes from the harness: after a lazy restore with background
 * delivery off it writes "faults" to the file LAZY_PREMISE_FILE in the
 * program's working directory (test/lib/modes.py).  Then every page a
 * program names to lazy_premise() must still be missing before its first
 * touch, in a VMA registered with userfaultfd ("um" in smaps VmFlags).
 * Without the file (no checkpoint, an eager restore, background delivery
 * on) nothing is asserted.
 */
#ifndef ZDTM_LAZY_H
#define ZDTM_LAZY_H

#include <stddef.h>

#define LAZY_PREMISE_FILE "lazy-premise"

/*
 * npages of private anonymous read-write memory with one read-only page on
 * each side, so no neighbour merges with it (its lazy pages are a range of
 * their own in the daemon) and an overrunning write faults.  Not PROT_NONE:
 * the pages of a VMA without PROT_READ are never left lazy.
 */
void *lazy_map_guarded(size_t npages);
/* The guard pages around a lazy_map_guarded() region are still read-only. */
void lazy_guards_expect(const char *what, void *region, size_t npages);

/* Non-zero when the harness says the pages must arrive through faults. */
int lazy_faults_expected(void);
/*
 * Premise: under lazy_faults_expected(), fail() unless every page of
 * [addr, addr + len) is neither present nor swapped and its VMAs are
 * registered for missing faults.  Call it before touching the pages.
 * Returns the number of pages it found missing (0 when nothing is expected).
 */
size_t lazy_premise(const char *what, const void *addr, size_t len);

/* Pages of [addr, addr + len) that are present (or swapped) now. */
size_t lazy_present_pages(const void *addr, size_t len);
/* Non-zero if the VMA holding addr is registered for missing faults. */
int lazy_registered(const void *addr);

/*
 * fail() from SIGALRM if the program is still running `seconds` from now
 * (a fault nobody answers sleeps forever otherwise).  0 disarms it.
 */
void lazy_watchdog(unsigned int seconds, const char *what);

#endif /* ZDTM_LAZY_H */
