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

/* The features of UFFDIO_API, or a negative errno (detail says why). */
static long long uffd_api_features(char *detail, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int err;

	if (fd < 0) {
		err = errno;
		snprintf(detail, len, "userfaultfd(): %m");
		return -err;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		err = errno;
		snprintf(detail, len, "UFFDIO_API: %m");
		close(fd);
		return -err;
	}
	close(fd);
	return api.features;
}

static int probe_userfaultfd(char *detail, size_t len)
{
	long long f = uffd_api_features(detail, len);

	if (f < 0)
		return 0;
	snprintf(detail, len, "features 0x%llx:%s%s%s%s%s%s%s%s%s", f,
		 f & UFFD_FEATURE_EVENT_FORK ? " fork" : "",
		 f & UFFD_FEATURE_EVENT_REMAP ? " remap" : "",
		 f & UFFD_FEATURE_EVENT_REMOVE ? " remove" : "",
		 f & UFFD_FEATURE_EVENT_UNMAP ? " unmap" : "",
		 f & UFFD_FEATURE_THREAD_ID ? " thread-id" : "",
		 f & UFFD_FEATURE_POISON ? " poison" : "",
		 f & UFFD_FEATURE_MOVE ? " move" : "",
		 f & UFFD_FEATURE_WP_ASYNC ? " wp-async" : "",
		 /* lazy shared memory (without it restored eagerly) */
		 f & UFFD_FEATURE_MISSING_SHMEM ? " shmem" : "");
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

/*
 * check --feature NAME, as tools built around CRIU probe it: "NAME is
 * supported" and exit 0, or CRIU's error line and a non-zero exit.
 */
#define UFFD_NONCOOP_FEATURES	(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | \
				 UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)

static int feature_uffd(void)
{
	char detail[128];

	if (uffd_api_features(detail, sizeof(detail)) < 0) {
		pr_err("UFFD is not supported (%s)", detail);
		return -ENOTSUP;
	}
	return 0;
}

static int feature_uffd_noncoop(void)
{
	char detail[128];
	long long f = uffd_api_features(detail, sizeof(detail));

	if (f < 0) {
		pr_err("UFFD is not supported (%s)", detail);
		return -ENOTSUP;
	}
	if ((f & UFFD_NONCOOP_FEATURES) != UFFD_NONCOOP_FEATURES) {
		pr_err("Non-cooperative UFFD is not supported (features 0x%llx)", f);
		return -ENOTSUP;
	}
	return 0;
}

/* What restore --lazy-pages needs: non-cooperative uffd, clone3 set_tid, PR_SET_MM_MAP. */
static int feature_lazy_pages(void)
{
	char detail[256] = "";
	int ret = feature_uffd_noncoop();

	if (ret)
		return ret;
	if (!probe_clone3_set_tid(detail, sizeof(detail)) || !probe_mm_map(detail, sizeof(detail))) {
		pr_err("Lazy pages are not supported (%s)", detail);
		return -ENOTSUP;
	}
	return 0;
}

static const struct feature {
	const char *name;
	int (*check)(void);
} features[] = {
	{ "uffd",		feature_uffd },
	{ "uffd-noncoop",	feature_uffd_noncoop },
	{ "lazy_pages",		feature_lazy_pages },
};

static int check_feature(const char *name)
{
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		int ret;

		if (strcmp(features[i].name, name))
			continue;
		ret = features[i].check();
		if (!ret)
			printf("%s is supported\n", name);
		return ret;
	}
	pr_err("Unknown feature %s (known: uffd, uffd-noncoop, lazy_pages)", name);
	return -EINVAL;
}

int cr_check(struct opts *o)
{
	int missing = 0;

	if (o->feature)
		return check_feature(o->feature);
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
