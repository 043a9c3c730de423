/*
 * The vDSO after a restore.  Records the [vdso]/[vvar]/[vvar_vclock] maps
 * lines and a CLOCK_MONOTONIC reading; finds the vDSO functions by parsing
 * the ELF image at AT_SYSINFO_EHDR.  After SIGTERM: the lines are the
 * same, AT_SYSINFO_EHDR still points at [vdso], and calling the vDSO
 * functions at their addresses gives the kernel's time (checked against
 * the same clocks read by real syscalls), monotonic time has moved
 * forward and never goes back, getcpu names a real CPU.
 */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);
typedef time_t (*time_fn)(time_t *);
typedef int (*getcpu_fn)(unsigned *, unsigned *, void *);

static clock_gettime_fn v_clock_gettime;
static gettimeofday_fn v_gettimeofday;
static time_fn v_time;
static getcpu_fn v_getcpu;

static void *vdso_sym(const char *want)
{
	const uint8_t *base = (const uint8_t *)getauxval(AT_SYSINFO_EHDR);
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	const Elf64_Phdr *ph;
	const Elf64_Shdr *sh;
	uint64_t load = 0;
	int i, found_load = 0;

	if (!base || memcmp(eh->e_ident, ELFMAG, SELFMAG))
		fail("no vDSO ELF image at AT_SYSINFO_EHDR %p", (const void *)base);
	ph = (const Elf64_Phdr *)(base + eh->e_phoff);
	for (i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && !found_load) {
			load = ph[i].p_vaddr - ph[i].p_offset;
			found_load = 1;
		}
	sh = (const Elf64_Shdr *)(base + eh->e_shoff);
	for (i = 0; i < eh->e_shnum; i++) {
		const Elf64_Sym *sym;
		const char *str;
		size_t n, j;

		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		sym = (const Elf64_Sym *)(base + sh[i].sh_offset);
		str = (const char *)(base + sh[sh[i].sh_link].sh_offset);
		n = sh[i].sh_size / sizeof(*sym);
		for (j = 0; j < n; j++)
			if (sym[j].st_shndx != SHN_UNDEF && !strcmp(str + sym[j].st_name, want))
				return (void *)(base + sym[j].st_value - load);
	}
	fail("vDSO symbol %s not found", want);
}

static void vdso_lines(char *out, size_t size)
{
	static char maps[1 << 20];
	const char *s;
	size_t used = 0;

	read_file("/proc/self/maps", maps, sizeof(maps));
	out[0] = '\0';
	for (s = maps; *s; ) {
		size_t n = strcspn(s, "\n");

		if (memchr(s, '[', n) && (strstr(s, "[vdso]") == s + n - 6 ||
					  (strstr(s, "[vvar") && strstr(s, "[vvar") < s + n))) {
			if (used + n + 2 > size)
				fail("vdso lines do not fit");
			memcpy(out + used, s, n);
			used += n;
			out[used++] = '\n';
			out[used] = '\0';
		}
		s += n;
		if (*s)
			s++;
	}
	if (!strstr(out, "[vdso]"))
		fail("no [vdso] line in /proc/self/maps");
}

static long long ns(const struct timespec *ts)
{
	return (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static long long sys_clock(clockid_t clk)
{
	struct timespec ts;

	if (syscall(SYS_clock_gettime, clk, &ts))
		fail("clock_gettime syscall: %m");
	return ns(&ts);
}

static long long vdso_clock(clockid_t clk)
{
	struct timespec ts;

	if (v_clock_gettime(clk, &ts))
		fail("vDSO clock_gettime(%d) failed", (int)clk);
	return ns(&ts);
}

static void expect_ordered(const char *name, clockid_t clk)
{
	long long a = vdso_clock(clk), b = sys_clock(clk), c = vdso_clock(clk);

	if (!(a <= b && b <= c))
		fail("%s: vDSO %lld, syscall %lld, vDSO %lld: the vDSO does not read the kernel's clock",
		     name, a, b, c);
}

int main(int argc, char **argv)
{
	static char lines_before[4096], lines_after[4096];
	long long mono_before, prev, t;
	unsigned long vdso_start;
	struct timeval tv_v, tv_s;
	unsigned cpu = ~0u, node = ~0u, scpu;
	time_t tt;
	char *p;
	int i;

	test_init(argc, argv, NULL);

	v_clock_gettime = (clock_gettime_fn)vdso_sym("__vdso_clock_gettime");
	v_gettimeofday = (gettimeofday_fn)vdso_sym("__vdso_gettimeofday");
	v_time = (time_fn)vdso_sym("__vdso_time");
	v_getcpu = (getcpu_fn)vdso_sym("__vdso_getcpu");
	vdso_lines(lines_before, sizeof(lines_before));
	expect_ordered("CLOCK_MONOTONIC before", CLOCK_MONOTONIC);
	mono_before = vdso_clock(CLOCK_MONOTONIC);
	test_msg("recorded lines %p", (void *)lines_before);

	test_daemon();
	test_waitsig();

	vdso_lines(lines_after, sizeof(lines_after));
	if (strcmp(lines_before, lines_after))
		fail("vdso/vvar maps lines changed:\n--- before\n%s--- after\n%s",
		     lines_before, lines_after);
	p = strstr(lines_after, "[vdso]");
	while (p > lines_after && p[-1] != '\n')
		p--;
	if (sscanf(p, "%lx", &vdso_start) != 1)
		fail("cannot parse the [vdso] line");
	if (getauxval(AT_SYSINFO_EHDR) != vdso_start)
		fail("AT_SYSINFO_EHDR is %#lx but [vdso] starts at %#lx",
		     getauxval(AT_SYSINFO_EHDR), vdso_start);

	t = vdso_clock(CLOCK_MONOTONIC);
	if (t <= mono_before)
		fail("CLOCK_MONOTONIC went back: %lld before the checkpoint, %lld after",
		     mono_before, t);
	expect_ordered("CLOCK_MONOTONIC", CLOCK_MONOTONIC);
	expect_ordered("CLOCK_REALTIME", CLOCK_REALTIME);
	expect_ordered("CLOCK_BOOTTIME", CLOCK_BOOTTIME);
	prev = vdso_clock(CLOCK_MONOTONIC);
	for (i = 0; i < 100000; i++) {
		t = vdso_clock(CLOCK_MONOTONIC);
		if (t < prev)
			fail("vDSO CLOCK_MONOTONIC went back from %lld to %lld", prev, t);
		prev = t;
	}
	t = vdso_clock(CLOCK_MONOTONIC);
	if (t - prev > 1000000000LL)
		fail("vDSO CLOCK_MONOTONIC jumps");

	if (v_gettimeofday(&tv_v, NULL) || syscall(SYS_gettimeofday, &tv_s, NULL))
		fail("gettimeofday failed");
	if (tv_s.tv_sec - tv_v.tv_sec > 1 || tv_s.tv_sec < tv_v.tv_sec)
		fail("vDSO gettimeofday %ld s vs syscall %ld s", (long)tv_v.tv_sec,
		     (long)tv_s.tv_sec);
	tt = v_time(NULL);
	if (labs((long)(syscall(SYS_time, NULL) - tt)) > 1)
		fail("vDSO time() %ld vs syscall %ld", (long)tt, (long)syscall(SYS_time, NULL));
	if (v_getcpu(&cpu, &node, NULL) || syscall(SYS_getcpu, &scpu, NULL, NULL))
		fail("getcpu failed");
	if (cpu >= (unsigned)sysconf(_SC_NPROCESSORS_CONF) || node > 1024)
		fail("vDSO getcpu says cpu %u node %u", cpu, node);
	if (clock_gettime(CLOCK_MONOTONIC, &(struct timespec){ 0, 0 }))
		fail("glibc clock_gettime failed");
	pass();
}
