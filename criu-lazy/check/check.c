/*
 * criu-lazy check: which kernel features criu-lazy relies on are present.
 * Each probe asks the running kernel directly; nothing is inferred from
 * the version number.
 */
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/kernel-abi.h"
#include "common/log.h"
#include "options.h"

struct probe {
	const char *name;
	bool required;		/* without it, dump/restore cannot work */
	int (*run)(char *detail, size_t len);	/* 1 present, 0 absent */
};

static int probe_userfaultfd(char *detail, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		snprintf(detail, len, "userfaultfd(): %m");
		return 0;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		snprintf(detail, len, "UFFDIO_API: %m");
		close(fd);
		return 0;
	}
	close(fd);
	snprintf(detail, len, "features 0x%llx:%s%s%s%s%s%s%s%s", (unsigned long long)api.features,
		 api.features & UFFD_FEATURE_EVENT_FORK ? " fork" : "",
		 api.features & UFFD_FEATURE_EVENT_REMAP ? " remap" : "",
		 api.features & UFFD_FEATURE_EVENT_REMOVE ? " remove" : "",
		 api.features & UFFD_FEATURE_EVENT_UNMAP ? " unmap" : "",
		 api.features & UFFD_FEATURE_THREAD_ID ? " thread-id" : "",
		 api.features & UFFD_FEATURE_POISON ? " poison" : "",
		 api.features & UFFD_FEATURE_MOVE ? " move" : "",
		 api.features & UFFD_FEATURE_WP_ASYNC ? " wp-async" : "");
	return 1;
}

/* clone3 with set_tid of a pid in use must fail with EEXIST, not EINVAL. */
static int probe_clone3_set_tid(char *detail, size_t len)
{
	pid_t tid = getpid();
	struct clone_args args = {
		.exit_signal = SIGCHLD,
		.set_tid = (uintptr_t)&tid,
		.set_tid_size = 1,
	};
	long ret = syscall(SYS_clone3, &args, sizeof(args));

	if (ret == 0)
		_exit(0);	/* cannot happen: our own pid is taken */
	if (errno == EEXIST)
		return 1;
	snprintf(detail, len, "clone3(set_tid): %m");
	return 0;
}

static int probe_pagemap_scan(char *detail, size_t len)
{
	struct page_region regions[4];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)regions & ~4095UL,
		.end = ((uintptr_t)regions & ~4095UL) + 4096,
		.vec = (uintptr_t)regions,
		.vec_len = 4,
		.category_anyof_mask = PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_PRESENT,
	};
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0) {
		snprintf(detail, len, "/proc/self/pagemap: %m");
		return 0;
	}
	ret = ioctl(fd, PAGEMAP_SCAN, &arg);
	close(fd);
	if (ret < 0) {
		snprintf(detail, len, "PAGEMAP_SCAN: %m");
		return 0;
	}
	return 1;
}

static int probe_mm_map(char *detail, size_t len)
{
	unsigned int size = 0;

	if (prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, (unsigned long)&size, 0, 0)) {
		snprintf(detail, len, "PR_SET_MM_MAP_SIZE: %m");
		return 0;
	}
	snprintf(detail, len, "struct size %u", size);
	return 1;
}

static int probe_process_vm_readv(char *detail, size_t len)
{
	char src[8] = "criu", dst[8] = "";
	struct iovec l = { dst, sizeof(dst) }, r = { src, sizeof(src) };

	if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) != sizeof(src)) {
		snprintf(detail, len, "process_vm_readv: %m");
		return 0;
	}
	return !strcmp(dst, "criu");
}

static int probe_ptrace_scope(char *detail, size_t len)
{
	int fd = open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC);
	char c = '0';

	if (fd >= 0) {
		if (read(fd, &c, 1) != 1)
			c = '0';
		close(fd);
	}
	if (c == '3') {
		snprintf(detail, len, "yama ptrace_scope is 3: ptrace is disabled");
		return 0;
	}
	return 1;
}

static const struct probe probes[] = {
	{ "ptrace",		true,  probe_ptrace_scope },
	{ "process_vm_readv",	true,  probe_process_vm_readv },
	{ "clone3 set_tid",	true,  probe_clone3_set_tid },
	{ "prctl PR_SET_MM_MAP", true, probe_mm_map },
	{ "userfaultfd",	true,  probe_userfaultfd },
	{ "PAGEMAP_SCAN",	false, probe_pagemap_scan },
};

int cr_check(struct opts *o)
{
	int missing = 0;

	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		char detail[256] = "";
		int ok = probes[i].run(detail, sizeof(detail));

		printf("%-22s %s%s%s\n", probes[i].name, ok ? "yes" : "no",
		       detail[0] ? "  " : "", detail);
		if (!ok && probes[i].required)
			missing++;
	}
	if (missing) {
		pr_err("%d required kernel feature%s missing", missing, missing > 1 ? "s are" : " is");
		return -ENOTSUP;
	}
	printf("Looks good.\n");
	return 0;
}
