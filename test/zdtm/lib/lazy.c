/*
 * Regions with guard pages, the lazy premise (pagemap and smaps VmFlags),
 * and the watchdog of the lazy_* programs.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lazy.h"
#include "zdtmtst.h"

#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_BATCH 4096		/* pagemap entries read at once */

void *lazy_map_guarded(size_t npages)
{
	size_t len = (npages + 2) * PAGE_SIZE;
	uint8_t *p;

	p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap %zu pages with guards: %m", npages);
	if (mprotect(p + PAGE_SIZE, npages * PAGE_SIZE, PROT_READ | PROT_WRITE))
		fail("mprotect the inside of a guarded region: %m");
	return p + PAGE_SIZE;
}

static int guard_is_none(const char *maps, unsigned long addr)
{
	unsigned long s, e;
	char perms[8];
	const char *l = maps;

	while (*l) {
		if (sscanf(l, "%lx-%lx %7s", &s, &e, perms) == 3 && s <= addr && addr < e)
			return !strncmp(perms, "r--p", 4);
		l = strchr(l, '\n');
		if (!l)
			break;
		l++;
	}
	return 0;
}

void lazy_guards_expect(const char *what, void *region, size_t npages)
{
	static char maps[1 << 20];
	unsigned long lo = (unsigned long)region - PAGE_SIZE;
	unsigned long hi = (unsigned long)region + npages * PAGE_SIZE;

	read_file("/proc/self/maps", maps, sizeof(maps));
	if (!guard_is_none(maps, lo) || !guard_is_none(maps, hi))
		fail("%s: the guard pages at %#lx and %#lx are no longer read-only", what, lo, hi);
}

int lazy_faults_expected(void)
{
	char buf[64];
	ssize_t n;
	int fd;

	fd = open(LAZY_PREMISE_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		fail("open %s: %m", LAZY_PREMISE_FILE);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		fail("read %s: %m", LAZY_PREMISE_FILE);
	buf[n] = '\0';
	if (strncmp(buf, "faults", 6))
		fail("%s says '%s': expected 'faults'", LAZY_PREMISE_FILE, buf);
	return 1;
}

size_t lazy_present_pages(const void *addr, size_t len)
{
	static uint64_t ent[PM_BATCH];
	unsigned long first = (unsigned long)addr / PAGE_SIZE;
	size_t npages = (len + PAGE_SIZE - 1) / PAGE_SIZE, done = 0, present = 0;
	int fd;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open /proc/self/pagemap: %m");
	while (done < npages) {
		size_t n = npages - done < PM_BATCH ? npages - done : PM_BATCH;
		ssize_t got = pread(fd, ent, n * 8, (off_t)((first + done) * 8));

		if (got != (ssize_t)(n * 8)) {
			close(fd);
			fail("read /proc/self/pagemap at page %#lx: %zd (%m)", first + done, got);
		}
		for (size_t i = 0; i < n; i++)
			if (ent[i] & (PM_PRESENT | PM_SWAPPED))
				present++;
		done += n;
	}
	close(fd);
	return present;
}

int lazy_registered(const void *addr)
{
	static char smaps[4 << 20];
	unsigned long a = (unsigned long)addr, s, e;
	const char *l = smaps, *flags;

	read_file("/proc/self/smaps", smaps, sizeof(smaps));
	while (*l) {
		/* a VMA's block starts with its range; its fields start with a name */
		if (sscanf(l, "%lx-%lx ", &s, &e) == 2 && strchr(l, ' ') &&
		    strchr(l, '-') < strchr(l, ' ') && s <= a && a < e) {
			flags = strstr(l, "\nVmFlags:");
			if (!flags)
				fail("smaps has no VmFlags for %#lx", a);
			flags += strlen("\nVmFlags:");
			for (size_t n = strcspn(flags, "\n"), i = 0; i + 2 <= n; i++)
				if (!strncmp(flags + i, " um", 3) &&
				    (flags[i + 3] == ' ' || flags[i + 3] == '\n'))
					return 1;
			return 0;
		}
		l = strchr(l, '\n');
		if (!l)
			break;
		l++;
	}
	fail("no VMA holds %#lx", a);
}

size_t lazy_premise(const char *what, const void *addr, size_t len)
{
	size_t npages = (len + PAGE_SIZE - 1) / PAGE_SIZE, present;

	if (!lazy_faults_expected())
		return 0;
	if (!lazy_registered(addr))
		fail("premise: %s at %p is not registered with userfaultfd after a lazy restore",
		     what, addr);
	present = lazy_present_pages(addr, len);
	if (present)
		fail("premise: %zu of the %zu pages of %s at %p are present before their first "
		     "touch: they were not left lazy", present, npages, what, addr);
	test_msg("premise: the %zu pages of %s are lazy", npages, what);
	return npages;
}

static const char *watchdog_what = "";
static unsigned int watchdog_secs;

static void on_watchdog(int sig)
{
	(void)sig;
	fail("watchdog: %s still not done after %u s (a fault hangs?)", watchdog_what,
	     watchdog_secs);
}

void lazy_watchdog(unsigned int seconds, const char *what)
{
	struct sigaction sa = { .sa_handler = on_watchdog };

	watchdog_what = what;
	watchdog_secs = seconds;
	sigemptyset(&sa.sa_mask);
	if (seconds && sigaction(SIGALRM, &sa, NULL))
		fail("sigaction(SIGALRM): %m");
	alarm(seconds);
}
