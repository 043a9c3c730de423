/*
 * Shared by the image library's unit tests (test_images*.c, one binary
 * each): CHECK (unit.h), stderr capture for asserting error lines, file
 * helpers and the driver that runs each case in a fresh directory.
 */
#ifndef CRIU_LAZY_TEST_UNIT_TEST_IMAGES_H
#define CRIU_LAZY_TEST_UNIT_TEST_IMAGES_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "unit.h"

#include "pstree.pb-c.h"

#define PAGE 4096ULL

/* pstree.img with @n entries, pids 100 on, each with @nr_threads threads */
static inline int write_pstree(int dirfd, unsigned n, unsigned nr_threads)
{
	uint32_t threads[64];
	struct cr_img *img;
	int ret;

	if (nr_threads > 64)
		return -EINVAL;
	ret = img_open(dirfd, IMG_PSTREE, 0, O_WRONLY, &img);
	if (ret)
		return ret;
	for (unsigned i = 0; i < n && !ret; i++) {
		PstreeEntry e = PSTREE_ENTRY__INIT;

		e.pid = 100 + i;
		e.ppid = i ? 100 : 0;
		e.pgid = e.sid = 100;
		for (unsigned t = 0; t < nr_threads; t++)
			threads[t] = e.pid + t * 100000;
		e.n_threads = nr_threads;
		e.threads = threads;
		ret = img_write_entry(img, &e.base);
	}
	return img_close(img) ?: ret;
}

/* stderr captured into a memfd while an error case runs */
struct capture {
	int saved_fd;
	int mem_fd;
	char text[4096];
};

static inline void capture_start(struct capture *c)
{
	fflush(stderr);
	c->mem_fd = memfd_create("stderr", MFD_CLOEXEC);
	c->saved_fd = dup(STDERR_FILENO);
	dup2(c->mem_fd, STDERR_FILENO);
}

static inline const char *capture_end(struct capture *c)
{
	ssize_t n;

	fflush(stderr);
	dup2(c->saved_fd, STDERR_FILENO);
	close(c->saved_fd);
	n = pread(c->mem_fd, c->text, sizeof(c->text) - 1, 0);
	c->text[n > 0 ? n : 0] = '\0';
	close(c->mem_fd);
	return c->text;
}

static inline int write_file(int dirfd, const char *name, const void *buf, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static inline off_t file_size(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, 0) ? -errno : st.st_size;
}

static inline int truncate_file(int dirfd, const char *name, off_t size)
{
	int fd = openat(dirfd, name, O_WRONLY);
	int ret;

	if (fd < 0)
		return -errno;
	ret = ftruncate(fd, size) ? -errno : 0;
	close(fd);
	return ret;
}

struct test_case {
	const char *name;
	int (*run)(int dirfd);
};

static inline void remove_dir(const char *path)
{
	int dirfd = open(path, O_RDONLY | O_DIRECTORY);
	struct dirent **names;
	int n;

	if (dirfd < 0)
		return;
	n = scandirat(dirfd, ".", &names, NULL, NULL);
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
			unlinkat(dirfd, names[i]->d_name, 0);
		free(names[i]);
	}
	if (n >= 0)
		free(names);
	close(dirfd);
	rmdir(path);
}

/* Run every case in its own temporary directory; returns the exit status. */
static inline int run_cases(const char *prog, const struct test_case *cases, size_t nr)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int failed = 0;

	log_init(prog, LOG_ERROR, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	for (size_t i = 0; i < nr; i++) {
		char dir[4096];
		int dirfd, ret;

		snprintf(dir, sizeof(dir), "%s/%s.XXXXXX", tmp, prog);
		if (!mkdtemp(dir) || (dirfd = open(dir, O_RDONLY | O_DIRECTORY)) < 0) {
			fprintf(stderr, "%s: temporary directory %s: %m\n", prog, dir);
			return 1;
		}
		ret = cases[i].run(dirfd);
		printf("%s - %s\n", ret ? "FAIL" : "ok", cases[i].name);
		failed += !!ret;
		close(dirfd);
		remove_dir(dir);
	}
	printf("%d of %zu failed\n", failed, nr);
	return failed > 100 ? 100 : failed;
}

#endif
