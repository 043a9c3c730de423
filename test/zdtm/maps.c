/*
 * The whole memory map.  Builds a variety of mappings (anonymous with each
 * protection, MAP_NORESERVE, executable anonymous, private and shared file
 * mappings, shared anonymous, a 2 MiB-aligned region that may get huge
 * pages, adjacent mappings that differ only in protection), then records
 * every line of /proc/self/maps and the VmFlags of every VMA in
 * /proc/self/smaps.  After SIGTERM every line must be the same (the shmem
 * inode of shared anonymous memory aside), and so must the VmFlags but for
 * the ones that describe the kernel's bookkeeping rather than the mapping
 * (sd soft-dirty, ac accounted, um/uw/ui userfaultfd registration).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

#define MAPS_SIZE (1 << 20)

static char maps_before[MAPS_SIZE], maps_after[MAPS_SIZE];
static char smaps[4 << 20];
static char flags_before[MAPS_SIZE], flags_after[MAPS_SIZE];

static void *map(size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = mmap(NULL, len, prot, flags, fd, off);

	if (p == MAP_FAILED)
		fail("mmap(len %zu, prot %#x, flags %#x): %m", len, prot, flags);
	return p;
}

/* "start-end flags..." per VMA, without the ignored flags. */
static void vmflags(char *out, size_t size)
{
	const char *s = smaps;
	size_t used = 0;
	char range[64] = "";

	read_file("/proc/self/smaps", smaps, sizeof(smaps));
	out[0] = '\0';
	while (*s) {
		size_t n = strcspn(s, "\n");

		if (!strncmp(s, "VmFlags:", 8)) {
			const char *f = s + 8, *end = s + n;

			used += (size_t)snprintf(out + used, size - used, "%s:", range);
			while (f < end) {
				f += strspn(f, " ");
				if (f >= end)
					break;
				if (strncmp(f, "sd", 2) && strncmp(f, "ac", 2) &&
				    strncmp(f, "um", 2) && strncmp(f, "uw", 2) &&
				    strncmp(f, "ui", 2))
					used += (size_t)snprintf(out + used, size - used,
								 " %.2s", f);
				f += 2;
			}
			used += (size_t)snprintf(out + used, size - used, "\n");
			if (used >= size)
				fail("VmFlags do not fit");
		} else if (n && ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')) &&
			   memchr(s, '-', n) && strchr(s, '-') < s + 17) {
			size_t r = strcspn(s, " ");

			if (r >= sizeof(range))
				r = sizeof(range) - 1;
			memcpy(range, s, r);
			range[r] = '\0';
		}
		s += n;
		if (*s)
			s++;
	}
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* maps_line_normalize() every line; lines may get shorter. */
static void normalize(char *maps)
{
	char line[1024], *in = maps, *out = maps;

	while (*in) {
		size_t n = strcspn(in, "\n"), len;

		if (n >= sizeof(line))
			fail("maps line too long");
		memcpy(line, in, n);
		line[n] = '\0';
		in += n + (in[n] == '\n');
		maps_line_normalize(line);
		len = strlen(line);
		memmove(out, line, len);	/* out never passes in */
		out += len;
		*out++ = '\n';
	}
	*out = '\0';
}

static void first_difference(const char *a, const char *b, const char *what)
{
	char la[512], lb[512];

	while (*a || *b) {
		size_t na = strcspn(a, "\n"), nb = strcspn(b, "\n");

		if (na != nb || memcmp(a, b, na)) {
			snprintf(la, sizeof(la), "%.*s", (int)na, a);
			snprintf(lb, sizeof(lb), "%.*s", (int)nb, b);
			fail("%s differ: before '%s', after '%s'", what, la, lb);
		}
		a += na + (a[na] != '\0');
		b += nb + (b[nb] != '\0');
	}
}

int main(int argc, char **argv)
{
	uint8_t *p, *big, *file_priv, *file_shared;
	uint8_t data[8 * PAGE_SIZE];
	int fd;

	test_init(argc, argv, NULL);

	pattern_fill(data, sizeof(data), 0x6d617073);
	write_file("maps.data", data, sizeof(data));
	fd = open("maps.data", O_RDWR);
	if (fd < 0)
		fail("open maps.data: %m");

	p = map(4 * PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p = map(4 * PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p = map(4 * PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
		MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p[0] = 0xc3;
	p = map(16 * PAGE_SIZE, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	p[PAGE_SIZE] = 1;
	/* one mapping, three protections: three VMAs */
	p = map(12 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(p, 1, 12 * PAGE_SIZE);
	if (mprotect(p + 4 * PAGE_SIZE, 4 * PAGE_SIZE, PROT_READ))
		fail("mprotect: %m");
	/* 2 MiB aligned 4 MiB inside an 6 MiB reservation */
	big = map(6 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p = (uint8_t *)(((unsigned long)big + (2 << 20) - 1) & ~((2UL << 20) - 1));
	if (mprotect(p, 4 << 20, PROT_READ | PROT_WRITE))
		fail("mprotect: %m");
	memset(p, 2, 4 << 20);
	file_priv = map(8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	file_priv[0] ^= 1;
	file_priv = map(4 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, 2 * PAGE_SIZE);
	file_shared = map(8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	file_shared[PAGE_SIZE] ^= 1;
	p = map(8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	p[0] = 1;
	close(fd);
	(void)file_priv;

	read_file("/proc/self/maps", maps_before, sizeof(maps_before));
	normalize(maps_before);
	vmflags(flags_before, sizeof(flags_before));
	if (count_lines(flags_before) != count_lines(maps_before) ||
	    !strstr(flags_before, " rd") || !strstr(flags_before, " sh"))
		fail("cannot make sense of /proc/self/smaps VmFlags");

	test_msg("recorded maps %p", (void *)maps_before);
	test_daemon();
	test_waitsig();

	read_file("/proc/self/maps", maps_after, sizeof(maps_after));
	normalize(maps_after);
	vmflags(flags_after, sizeof(flags_after));
	first_difference(maps_before, maps_after, "/proc/self/maps lines");
	first_difference(flags_before, flags_after, "VmFlags");
	pass();
}
